"""Opening a locator: ``kind:TARGET`` or a bare path -> the registered connector.

The connectors register themselves in ``sources.py``; the modules that open a nested source
(a media folder's sidecar, a Kaggle download) import this module, not ``sources``, so the
package has no import cycle.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import UnknownNameError
from .base import CONNECTORS, Connector, IngestError, resolve_path
from .detect import detect_kind

if TYPE_CHECKING:
    from ..project import Project

_SCHEME = re.compile(r"([a-z][a-z0-9_]+):(.*)", re.DOTALL)


def open_connector(source: str | os.PathLike[str] | Connector, project: Project | None = None) -> Connector:
    """``source`` as a connector: a locator or path is opened, a connector is passed through."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        return source
    return open_source(source, project=project)


def _roots(project: Project | None, allowed_roots: list[Path] | None) -> list[Path] | None:
    roots = [Path(r).expanduser().resolve() for r in (allowed_roots or [])]
    if project is not None:
        roots += project.allowed_roots()
    return roots or None


def open_source(locator: str, *, project: Project | None = None,
                allowed_roots: list[Path] | None = None) -> Connector:
    """A connector for ``kind:TARGET`` (jsonl, json, csv, tsv, parquet, conll, dir, hf, kaggle)
    or for a bare path, whose kind is detected from its content.

    Paths that leave ``allowed_roots`` or the project's ``[security] allowed_roots`` (through
    ``..`` or a symlink) are refused with an IngestError.
    """
    if not isinstance(locator, str) or not locator.strip():
        raise IngestError("empty locator: give kind:PATH (e.g. csv:data.csv) or a path",
                          "ingest_validation_failed")
    locator = locator.strip()
    roots = _roots(project, allowed_roots)
    match = _SCHEME.fullmatch(locator)
    if match and match.group(1) in CONNECTORS:
        factory = CONNECTORS.get(match.group(1))
        return factory(match.group(2), locator=locator, roots=roots, project=project)
    if match and not Path(locator).expanduser().exists():
        try:
            CONNECTORS.get(match.group(1))
        except UnknownNameError as exc:
            raise IngestError(f"{exc}; or give a plain path", "ingest_unsupported_format") from None
    return _bare_path(locator, roots, project)


def _bare_path(locator: str, roots: list[Path] | None, project: Project | None) -> Connector:
    path = resolve_path(locator, roots=roots, project=project)
    kind, why = detect_kind(path)
    target = str(path)
    connector = CONNECTORS.get(kind)(target, locator=locator, roots=roots, project=project)
    note = getattr(connector, "note", None)
    if callable(note):
        note(f"kind {kind} detected" + (f" ({why})" if why else ""))
    return connector
