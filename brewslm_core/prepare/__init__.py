"""Prepare: turn committed (or cleaned) rows into the manifest every later stage reads.

``prepare(project, …) -> Manifest`` writes ``prepared/{train,eval,gold}.jsonl`` and
``prepared/manifest.json``; ``Manifest.load(project)`` and ``manifest.iter_split(project, split)``
are how Preflight, Train and Evaluate read them (verified against the manifest's sha256s).
"""

from ..contracts.prepare import Manifest, ManifestError
from .build import PrepareError, prepare

__all__ = ["Manifest", "ManifestError", "PrepareError", "prepare"]
