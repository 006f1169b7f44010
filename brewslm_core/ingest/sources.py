"""Locator parsing and the built-in connectors in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import CONNECTORS, Connector, resolve_path
from .delimited import DelimitedConnector
from .json_file import JsonConnector, split_record_path
from .jsonl import JsonlConnector
from .media import MediaDirConnector
from .open import open_connector, open_source
from .remote import HfConnector, open_kaggle, split_hf_target
from .tabular import ConllConnector, ParquetConnector

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["open_connector", "open_source"]  # opening moved to open.py; the old names stay


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
