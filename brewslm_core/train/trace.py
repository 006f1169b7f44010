"""Per-step trace: one JSON line per step, flushed at once so a live chart can read it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class TraceWriter:
    def __init__(self, path: Path, truncate_at: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_at is not None and path.exists():
            # resume: drop lines written after the checkpoint we resume from
            with path.open("r+b") as fh:
                fh.truncate(truncate_at)
        self._fh = path.open("ab")

    def write(self, line: dict[str, Any]) -> None:
        line.setdefault("ts", time.time())
        self._fh.write((json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8"))
        self._fh.flush()

    def offset(self) -> int:
        return self._fh.tell()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def parse_lines(raw: bytes) -> list[dict[str, Any]]:
    """The JSON objects of complete trace lines in ``raw``; a corrupt line is skipped, never fatal.

    The one parser of trace.jsonl: ``read_trace`` and the loss-chart widget's live tail use it.
    """
    out = []
    for line in raw.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def split_of(line: dict[str, Any]) -> str:
    """``"train"`` or ``"eval"``: the line's ``split`` (lines without one are train steps)."""
    return str(line.get("split", "train"))


def read_trace(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Trace lines; ``split="train"`` or ``"eval"`` filters. A half-written last line is skipped."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]  # the writer may be mid-line
    return [line for line in parse_lines(complete) if split is None or split_of(line) == split]
