"""Shared behaviour of connectors that read one file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..contracts import SourceDescription
from .base import Row, file_size, raise_if_placeholder
from .describe import describe_source


class FileConnector:
    """Base for one-file connectors: subclasses implement ``_rows()``.

    ``notes`` holds what detection found (static) plus what the last full read found.
    """

    kind = "file"
    text_values = False  # True when every value is a string typed by its spelling (CSV, TSV)
    text_format = True  # False for binary formats (parquet): skip the "is this text" check

    def __init__(self, path: Path, locator: str) -> None:
        self.path = path
        self.locator = locator
        self.base_dir: Path | None = path.parent
        self.encoding: str | None = "utf-8"
        self.static_notes: list[str] = []
        self.pass_notes: list[str] = []

    @property
    def notes(self) -> list[str]:
        return self.static_notes + self.pass_notes

    def note(self, text: str) -> None:
        if text not in self.static_notes:
            self.static_notes.append(text)

    def load(self) -> Iterator[Row]:
        raise_if_placeholder(self.path, self.text_format)
        self.pass_notes = []
        yield from self._rows()

    def _rows(self) -> Iterator[Row]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, sample_size: int = 20) -> SourceDescription:
        raise_if_placeholder(self.path, self.text_format)
        return describe_source(
            self, sample_size, size=file_size(self.path), text_values=self.text_values
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.locator!r})"
