"""Plain text files: prose (one document per blank-line separated block, else per line) and
fastText lines (``__label__X __label__Y text``).

A text file is only read as CSV when it really is delimited (detect.py asks ``looks_delimited``):
prose with commas in it is prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..contracts import SentinelRow
from .base import (
    CONNECTORS,
    Connector,
    Row,
    display_raw,
    has_surrogates,
    open_binary,
    read_head,
    resolve_path,
    text_stream,
)
from .encoding import detect_encoding
from .files import FileConnector

if TYPE_CHECKING:
    from ..project import Project

FASTTEXT = re.compile(r"(?:__label__\S+\s+)+")
_DELIMS = (",", "\t", ";", "|")


def _lines(head: bytes, limit: int = 400) -> list[str]:
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) >= 65536 and lines:
        lines.pop()  # the last line of a head may be cut short
    return [ln for ln in lines[:limit] if ln.strip()]


def looks_like_fasttext(head: bytes) -> bool:
    """>= 90% of the non-blank lines start with ``__label__``."""
    lines = _lines(head)
    return len(lines) >= 2 and sum(ln.startswith("__label__") for ln in lines) >= 0.9 * len(lines)


def looks_delimited(head: bytes) -> bool:
    """True unless the text holds delimiters that split its lines unevenly (prose).

    A file without any delimiter stays with the CSV reader (one ``col_0`` value per line); a
    delimiter that gives >= 90% of lines the same cell count (>= 2) is a real table.
    """
    lines = _lines(head)
    if not lines:
        return True
    used = [d for d in _DELIMS if any(d in ln for ln in lines)]
    if not used:
        return True
    blocks = head.replace(b"\r\n", b"\n").count(b"\n\n")
    for d in used:
        counts = [ln.count(d) for ln in lines]
        top = max(set(counts), key=counts.count)
        if top >= 1 and counts.count(top) >= 0.9 * len(lines) and not (blocks and d == ","
                                                                         and top <= 2):
            return True
    return False


class TextConnector(FileConnector):
    """Streams the file: the layout (fastText, blocks or lines) is judged on its head."""

    kind = "text"

    def _rows(self) -> Iterator[Row]:
        encoding, notes, _, _ = detect_encoding(self.path)
        self.encoding = encoding
        for note in notes:
            self.note(note)
        head = read_head(self.path).decode(encoding, errors="replace").lstrip("\ufeff")
        head = head.replace("\r\n", "\n").replace("\r", "\n")
        lines = [ln for ln in head.split("\n") if ln.strip()]
        fasttext = bool(lines) and sum(ln.startswith("__label__") for ln in lines) >= 0.9 * len(
            lines)
        blocks = re.search(r"\S[^\n]*\n[^\S\n]*\n\s*\S", head) is not None
        if fasttext:
            self.note("fastText lines: __label__ prefixes are the labels, the rest is the text")
        else:
            self.note("plain text: one document per " + ("blank-line separated block" if blocks
                                                          else "line"))
        block: list[str] = []
        start = 0
        with text_stream(open_binary(self.path), encoding) as fh:
            for line_no, raw in enumerate(fh, start=1):
                line = raw.rstrip("\r\n")
                if line_no == 1:
                    line = line.lstrip("\ufeff")
                if fasttext:
                    if line.strip():
                        yield self._fasttext(line_no, line)
                    continue
                if not blocks:
                    if line.strip():
                        yield self._doc(line_no, line)
                    continue
                if line.strip():
                    start = start or line_no
                    block.append(line)
                elif block:
                    yield self._doc(start, "\n".join(block))
                    block, start = [], 0
        if block:
            yield self._doc(start, "\n".join(block))

    def _doc(self, line_no: int, body: str) -> Row:
        body = body.strip()
        if has_surrogates(body):
            return SentinelRow(line_no, display_raw(body),
                               f"undecodable bytes for encoding {self.encoding}", self.locator)
        return {"text": body}

    def _fasttext(self, line_no: int, line: str) -> Row:
        match = FASTTEXT.match(line)
        if match is None or has_surrogates(line):
            why = ("undecodable bytes" if has_surrogates(line)
                   else "a fastText line without a __label__ prefix")
            return SentinelRow(line_no, display_raw(line), why, self.locator)
        labels = [t[len("__label__"):] for t in match.group().split()]
        return {"label": labels[0], "labels": labels, "text": line[match.end():].strip()}


@CONNECTORS.register("text")
def text_source(target: str, *, locator: str, roots: list[Path] | None,
                project: Project | None) -> Connector:
    return TextConnector(resolve_path(target, roots=roots, project=project), locator)
