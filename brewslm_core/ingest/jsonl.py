"""JSON Lines: one row per line; a line that does not parse or decode becomes a sentinel row."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

from ..contracts import SentinelRow
from .base import Row, display_raw, open_binary
from .files import FileConnector


def as_row(value: Any) -> dict[str, Any]:
    """Objects are rows; positional arrays become col_0, col_1, …; a bare scalar is ``value``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {f"col_{i}": item for i, item in enumerate(value)}
    return {"value": value}


class JsonlConnector(FileConnector):
    kind = "jsonl"

    def _rows(self) -> Iterator[Row]:
        blank = 0
        with open_binary(self.path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if line_no == 1 and line.startswith(codecs.BOM_UTF8):
                    line = line[3:]
                    self.note("utf-8 byte order mark skipped")
                stripped = line.strip()
                if not stripped:
                    blank += 1
                    continue
                try:
                    # json.loads on bytes decodes UTF-8 itself; bad bytes raise, never crash us.
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
