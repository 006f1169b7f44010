"""JSON Lines: one row per line; a line that does not parse or decode becomes a sentinel row."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

from ..contracts import SentinelRow
from .base import Row, display_raw, open_binary
from .encoding import detect_encoding
from .files import FileConnector


def as_row(value: Any) -> dict[str, Any]:
    """Objects are rows; positional arrays become col_0, col_1, …; a bare scalar is ``value``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {f"col_{i}": item for i, item in enumerate(value)}
    return {"value": value}


def _fast_loads() -> Any:
    """orjson when installed (several times faster); the standard library otherwise."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        return json.loads
    return orjson.loads


UNICODE = ("utf-8", "utf-8-sig", "utf-16", "utf-32", "utf-16-le", "utf-16-be")


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _recode(line: bytes, encoding: str) -> bytes:
    return line.decode(encoding, errors="surrogateescape").encode("utf-8", "surrogateescape")


class JsonlConnector(FileConnector):
    kind = "jsonl"

    def _rows(self) -> Iterator[Row]:
        blank = 0
        fast = _fast_loads()
        single_byte: str | None = None  # set once a line fails to decode as UTF-8
        checked = False
        with open_binary(self.path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if single_byte and not line.isascii():
                    line = _recode(line, single_byte)
                try:
                    value = fast(line)  # the common case: one call per line, nothing else
                except ValueError:
                    pass
                else:
                    yield value if isinstance(value, dict) else as_row(value)
                    continue
                if not checked and not _is_utf8(line):
                    # JSON Lines should be UTF-8; only now pay for a whole-file check, which
                    # tells a cp1252 export (decode it) from a few bad lines (sentinels).
                    checked = True
                    info = detect_encoding(self.path)
                    if info.encoding not in UNICODE:
                        single_byte = self.encoding = info.encoding
                        for note in info.notes:
                            self.note(note)
                        line = _recode(line, single_byte)
                if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                    line = line[3:]
                    self.note("utf-8 byte order mark skipped")
                stripped = line.strip()
                if not stripped:
                    blank += 1
                    continue
                try:
                    # The standard parser decides (it also reads NaN and huge integers) and
                    # words the error; bad bytes raise UnicodeDecodeError, never crash us.
                    value = json.loads(stripped)
                except UnicodeDecodeError as exc:
                    yield SentinelRow(line_no, display_raw(stripped), f"undecodable bytes: {exc}",
                                      self.locator)
                    continue
                except ValueError as exc:
                    yield SentinelRow(line_no, display_raw(stripped), f"invalid JSON: {exc}",
                                      self.locator)
                    continue
                yield as_row(value)
        if blank:
            self.pass_notes.append(f"{blank} blank line(s) skipped")
