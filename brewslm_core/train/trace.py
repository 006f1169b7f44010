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


def read_trace(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Trace lines; ``split="train"`` or ``"eval"`` filters. A half-written last line is skipped."""
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line being written right now
        if split is None or line.get("split", "train") == split:
            out.append(line)
    return out
