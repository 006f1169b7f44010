"""Parquet files and CoNLL token files."""

from __future__ import annotations

import re
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
    """``token … tag`` lines; a blank line ends a sentence; ``-DOCSTART-`` and ``#`` comment
    lines are skipped.

    Columns are picked by content over the first lines: a leading token-index column (CoNLL-U,
    GermEval) is skipped together with its multiword/empty-node lines (``2-3``, ``8.1``); the
    tag column is the last one holding BIO tags that are not all ``O`` (else the last BIO one,
    else a UPOS column, else the last column); the token is the first other column. Remaining
    columns are kept under ``columns``. A sentence with a line that is too short becomes one
    sentinel row.
    """

    kind = "conll"

    def _rows(self) -> Iterator[Row]:
        from .detect import is_comment

        encoding, notes, _, _ = detect_encoding(self.path)
        self.encoding = encoding
        for note in notes:
            self.note(note)
        self._layout = None
        docstarts = comments = 0
        lines: list[tuple[int, str]] = []
        with text_stream(open_binary(self.path), encoding) as fh:
            for line_no, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if text.startswith("-DOCSTART-"):
                    docstarts += 1
                    continue
                if is_comment(text):
                    comments += 1
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
        if comments:
            self.pass_notes.append(f"{comments} # comment line(s) skipped")

    def _choose(self, rows: list[list[str]]) -> tuple[bool, int, int]:
        """(has an index column, token column, tag column) judged on the first sentence(s)."""
        from .detect import tag_column_kind

        width = max(set(map(len, rows)), key=[len(r) for r in rows].count)
        same = [r for r in rows if len(r) == width]
        cols = [[r[i] for r in same] for i in range(width)]
        index = width >= 3 and all(re.fullmatch(r"\d+([-.]\d+)?", v) for v in cols[0])
        first = 1 if index else 0
        bio = [i for i in range(first + 1, width) if tag_column_kind(cols[i]) == "bio"]
        informative = [i for i in bio if any(v != "O" for v in cols[i])]
        upos = [i for i in range(first + 1, width) if tag_column_kind(cols[i]) == "upos"]
        tag = (informative or bio or upos or [width - 1])[-1]
        self.note(f"columns: token {first}, tag {tag}" + (" (column 0 is a token index)"
                                                          if index else ""))
        return index, first, tag

    def _sentence(self, lines: list[tuple[int, str]]) -> Row:
        split = [(n, t, [p.strip() for p in (t.split("\t") if "\t" in t else t.split())])
                 for n, t in lines]
        if self._layout is None:
            self._layout = self._choose([p for _, _, p in split])
        index, tok, tag = self._layout
        tokens: list[str] = []
        tags: list[str] = []
        middle: list[list[str]] = []
        for line_no, text, parts in split:
            if index and parts and re.fullmatch(r"\d+[-.]\d+", parts[0]):
                continue  # CoNLL-U multiword token or empty node: its words follow
            if len(parts) <= max(tok, tag) or not parts[tag] or has_surrogates(text):
                why = ("undecodable bytes" if has_surrogates(text)
                       else f"line {line_no} has no tag column")
                raw = "\n".join(t for _, t in lines)
                return SentinelRow(lines[0][0], display_raw(raw), why, self.locator)
            tokens.append(parts[tok])
            tags.append(parts[tag])
            middle.append([p for i, p in enumerate(parts) if i not in (tok, tag)
                           and not (index and i == 0)])
        row: dict = {"tokens": tokens, "tags": tags}
        if any(middle):
            row["columns"] = middle
        return row
