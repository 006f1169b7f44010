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
from .base import CONNECTORS, Connector, Row, display_raw, has_surrogates, open_binary, resolve_path
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
    kind = "text"

    def _rows(self) -> Iterator[Row]:
        encoding, notes, _, _ = detect_encoding(self.path)
        self.encoding = encoding
        for note in notes:
            self.note(note)
        with open_binary(self.path) as fh:
            text = fh.read().decode(encoding, errors="surrogateescape")
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if lines and sum(ln.startswith("__label__") for ln in lines) >= 0.9 * len(lines):
            self.note("fastText lines: __label__ prefixes are the labels, the rest is the text")
            yield from self._fasttext(text)
            return
        blocks = re.search(r"\S[^\n]*\n[^\S\n]*\n\s*\S", text) is not None
        split = r"\n[^\S\n]*\n\s*" if blocks else r"\n"
        self.note("plain text: one document per " + ("blank-line separated block" if blocks
                                                      else "line"))
        pieces, pos = [], 0
        for sep in re.finditer(split, text):
            pieces.append((pos, text[pos:sep.start()]))
            pos = sep.end()
        pieces.append((pos, text[pos:]))
        for start, piece in pieces:
            if not piece.strip():
                continue
            body = piece.strip()
            if has_surrogates(body):
                yield SentinelRow(text.count("\n", 0, start) + 1, display_raw(body),
                                  f"undecodable bytes for encoding {encoding}", self.locator)
                continue
            yield {"text": body}

    def _fasttext(self, text: str) -> Iterator[Row]:
        for line_no, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            match = FASTTEXT.match(line)
            if match is None or has_surrogates(line):
                why = ("undecodable bytes" if has_surrogates(line)
                       else "a fastText line without a __label__ prefix")
                yield SentinelRow(line_no, display_raw(line), why, self.locator)
                continue
            labels = [t[len("__label__"):] for t in match.group().split()]
            yield {"label": labels[0], "labels": labels, "text": line[match.end():].strip()}


@CONNECTORS.register("text")
def text_source(target: str, *, locator: str, roots: list[Path] | None,
                project: Project | None) -> Connector:
    return TextConnector(resolve_path(target, roots=roots, project=project), locator)
