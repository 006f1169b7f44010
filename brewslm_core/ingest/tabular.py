"""Parquet files and CoNLL token files."""

from __future__ import annotations

from collections.abc import Iterator

from ..contracts import SentinelRow
from .base import IngestError, Row, display_raw, has_surrogates, open_binary, text_stream
from .encoding import detect_encoding
from .files import FileConnector


class ParquetConnector(FileConnector):
    """Streams record batches, so memory stays at one batch whatever the file size."""

    kind = "parquet"
    text_format = False
    batch_rows = 4096

    def __init__(self, path, locator: str) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path, locator)
        self.encoding = None

    def _rows(self) -> Iterator[Row]:
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises several types for a bad footer
            raise IngestError(f"{self.path.name} is not a readable parquet file: {exc}; "
                              "download it again", "ingest_unsupported_format") from exc
        for batch in handle.iter_batches(batch_size=self.batch_rows):
            yield from batch.to_pylist()


class ConllConnector(FileConnector):
    """``token … tag`` lines; a blank line ends a sentence; ``-DOCSTART-`` lines are skipped.

    The first column is the token and the last one the tag (extra middle columns, such as
    POS tags, are kept under ``columns``). A sentence with a line that has no tag becomes one
    sentinel row.
    """

    kind = "conll"

    def _rows(self) -> Iterator[Row]:
        encoding, notes, _, _ = detect_encoding(self.path)
        self.encoding = encoding
        for note in notes:
            self.note(note)
        docstarts = 0
        lines: list[tuple[int, str]] = []
        with text_stream(open_binary(self.path), encoding) as fh:
            for line_no, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.startswith("-DOCSTART-"):
                    docstarts += 1
                    continue
                if text.strip():
                    lines.append((line_no, text))
                    continue
                if lines:
                    yield self._sentence(lines)
                    lines = []
            if lines:
                yield self._sentence(lines)
        if docstarts:
            self.pass_notes.append(f"{docstarts} -DOCSTART- line(s) skipped")

    def _sentence(self, lines: list[tuple[int, str]]) -> Row:
        tokens: list[str] = []
        tags: list[str] = []
        middle: list[list[str]] = []
        for line_no, text in lines:
            parts = text.split("\t") if "\t" in text else text.split()
            parts = [p.strip() for p in parts]
            if len(parts) < 2 or not parts[-1] or has_surrogates(text):
                why = ("undecodable bytes" if has_surrogates(text)
                       else f"line {line_no} has no tag column")
                raw = "\n".join(t for _, t in lines)
                return SentinelRow(lines[0][0], display_raw(raw), why, self.locator)
            tokens.append(parts[0])
            tags.append(parts[-1])
            middle.append(parts[1:-1])
        row: dict = {"tokens": tokens, "tags": tags}
        if any(middle):
            row["columns"] = middle
        return row
