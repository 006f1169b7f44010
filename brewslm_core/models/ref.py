"""What a base model is (ModelRef), where converted models live, and the errors we raise."""

from __future__ import annotations

import os
from pathlib import Path

from ..contracts.base import Contract, contract

FAMILIES: tuple[str, ...] = ("minilm", "smollm2", "whisper", "hf")
KINDS: tuple[str, ...] = ("encoder", "causal_lm", "speech_seq2seq", "seq2seq_lm")
SOURCES: tuple[str, ...] = ("package", "cache", "local", "hub")


@contract
class ModelRef(Contract):
    """A base model resolved to something loadable.

    ``path`` is a Hugging Face model folder (package/cache/local) or a hub id (source "hub").
    For the converted families (smollm2, whisper) the cache folder is built on first use by
    ``materialize`` / ``load_tokenizer`` / ``load_model``.
    """

    name: str
    family: str
    path: str
    kind: str
    source: str


class ModelNotAvailableError(RuntimeError):
    """A base model cannot be found or loaded offline; the message says what to do instead."""


def cache_dir() -> Path:
    """Where converted base models are kept: $BREWSLM_CACHE_DIR, else the user cache dir.

    Never inside the repository: converted weights are hundreds of MB and machine-specific.
    """
    override = os.environ.get("BREWSLM_CACHE_DIR")
    if override:
        root = Path(override).expanduser()
    else:
        try:
            import platformdirs

            root = Path(platformdirs.user_cache_dir("brewslm", appauthor=False))
        except ImportError:  # platformdirs comes with most installs; fall back to XDG layout
            root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "brewslm"
    root.mkdir(parents=True, exist_ok=True)
    return root
