"""Locator parsing and the built-in connectors in the registry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import UnknownNameError
from .base import CONNECTORS, Connector, IngestError, resolve_path
from .delimited import DelimitedConnector
from .detect import detect_kind
from .json_file import JsonConnector, split_record_path
from .jsonl import JsonlConnector
from .media import MediaDirConnector
from .remote import HfConnector, open_kaggle, split_hf_target
from .tabular import ConllConnector, ParquetConnector

if TYPE_CHECKING:
    from ..project import Project

_SCHEME = re.compile(r"([a-z][a-z0-9_]+):(.*)", re.DOTALL)


@CONNECTORS.register("jsonl")
def jsonl_source(target: str, *, locator: str, roots: list[Path] | None,
                 project: Project | None) -> Connector:
    return JsonlConnector(resolve_path(target, roots=roots, project=project), locator)


@CONNECTORS.register("json")
def json_source(target: str, *, locator: str, roots: list[Path] | None,
                project: Project | None) -> Connector:
    file_part, record_path = split_record_path(target)
    path = resolve_path(file_part, roots=roots, project=project)
    return JsonConnector(path, locator, record_path)


@CONNECTORS.register("csv")
def csv_source(target: str, *, locator: str, roots: list[Path] | None,
               project: Project | None) -> Connector:
    return DelimitedConnector(resolve_path(target, roots=roots, project=project), locator, "csv")


@CONNECTORS.register("tsv")
def tsv_source(target: str, *, locator: str, roots: list[Path] | None,
               project: Project | None) -> Connector:
    path = resolve_path(target, roots=roots, project=project)
    return DelimitedConnector(path, locator, "tsv", delimiter="\t")


@CONNECTORS.register("parquet")
def parquet_source(target: str, *, locator: str, roots: list[Path] | None,
                   project: Project | None) -> Connector:
    return ParquetConnector(resolve_path(target, roots=roots, project=project), locator)


@CONNECTORS.register("conll")
def conll_source(target: str, *, locator: str, roots: list[Path] | None,
                 project: Project | None) -> Connector:
    return ConllConnector(resolve_path(target, roots=roots, project=project), locator)


@CONNECTORS.register("dir")
def dir_source(target: str, *, locator: str, roots: list[Path] | None,
               project: Project | None) -> Connector:
    path = resolve_path(target, roots=roots, project=project)
    return MediaDirConnector(path, locator, roots)


@CONNECTORS.register("hf")
def hf_source(target: str, *, locator: str, roots: list[Path] | None,
              project: Project | None) -> Connector:
    ident, split = split_hf_target(target)
    return HfConnector(ident, split, locator, roots=roots, project=project)


CONNECTORS.register("kaggle")(open_kaggle)


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
