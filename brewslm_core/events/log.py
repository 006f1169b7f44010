"""The append-only event log: ``events/events.jsonl``, one JSON object per line.

The log is the source of truth; the DuckDB file is an index rebuilt from it on demand.

Writers take an exclusive ``flock`` on the log itself, read the id of the last complete line,
write one line with a single ``O_APPEND`` write, release the lock, then fsync. Ids are therefore
unique and increase in file order. A writer killed mid-write leaves a last line without its
newline; readers never consume such a line, and the next writer cuts it off under the lock
(the dead writer no longer holds the lock, so nobody is still writing it).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_NAME = "events.jsonl"
_TAIL_BLOCK = 16 * 1024
_READ_CHUNK = 8 * 1024 * 1024


class EventStoreError(RuntimeError):
    """The event log could not be read or written (disk full, permissions…)."""


@dataclass(frozen=True)
class Appended:
    id: int
    ts: datetime
    created_at: datetime


@dataclass(frozen=True)
class PendingLines:
    """Complete lines read from ``start`` up to ``end`` (the byte after the last newline)."""

    lines: list[tuple[int, bytes]]  # (byte offset, line without newline)
    start: int
    end: int


def _line_id(line: bytes) -> int | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def scan_tail(fd: int, size: int) -> tuple[int, int]:
    """Return (end of the last complete line, id of the last parseable line or 0).

    Reads backwards in blocks, so the cost does not grow with the log.
    """
    pos = size
    carry = b""
    complete_end: int | None = None
    while pos > 0:
        start = max(0, pos - _TAIL_BLOCK)
        chunk = os.pread(fd, pos - start, start) + carry
        pos = start
        if complete_end is None:
            nl = chunk.rfind(b"\n")
            if nl < 0:
                carry = chunk  # still inside a torn last line
                continue
            complete_end = pos + nl + 1
            chunk = chunk[: nl + 1]
        lines = chunk.split(b"\n")[:-1]
        head = b""
        if pos > 0:  # the first piece may start before this block
            head, lines = lines[0], lines[1:]
        for line in reversed(lines):
            found = _line_id(line)
            if found is not None:
                return complete_end, found
        carry = head + b"\n"
    return (complete_end or 0), 0


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            if not self.path.exists():
                self._create()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EventStoreError(f"cannot open the event log {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # also releases the lock if the caller has not

    def _create(self) -> None:
        """Create the log and fsync its folder, so the file itself survives a power cut."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644))
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append(self, body: bytes, ts: datetime | None) -> Appended:
        """Write one event line. ``body`` is a JSON object without id/ts/created_at."""
        if not (body.startswith(b"{") and body.endswith(b"}")):
            raise ValueError("event body must be a JSON object")
        rest = b"," + body[1:] if len(body) > 2 else b"}"
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            complete_end, last_id = scan_tail(fd, size)
            if complete_end < size:
                os.ftruncate(fd, complete_end)  # a torn line from a killed writer
            new_id = last_id + 1
            created_at = datetime.now(UTC)
            ts = created_at if ts is None else ts
            head = json.dumps(
                {"id": new_id, "ts": ts.isoformat(), "created_at": created_at.isoformat()},
                separators=(",", ":"),
            ).encode()
            line = head[:-1] + rest + b"\n"
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError as exc:
                os.ftruncate(fd, complete_end)  # never leave half a line behind
                raise EventStoreError(
                    f"could not write to the event log {self.path}: {exc}; "
                    "free some disk space or fix permissions, then retry"
                ) from exc
            fcntl.flock(fd, fcntl.LOCK_UN)
            # fsync outside the lock: other writers proceed while this one waits for the disk.
            try:
                os.fsync(fd)
            except OSError as exc:
                raise EventStoreError(f"could not fsync the event log {self.path}: {exc}") from exc
        return Appended(id=new_id, ts=ts, created_at=created_at)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def first_line(self) -> bytes:
        """The first complete line (a fingerprint telling whether the log was replaced)."""
        try:
            with open(self.path, "rb") as fh:
                line = fh.readline(1 << 20)
        except FileNotFoundError:
            return b""
        return line if line.endswith(b"\n") else b""

    def read_from(self, offset: int) -> Iterator[PendingLines]:
        """Yield batches of complete lines after ``offset``; a torn last line is left unread."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            fh.seek(offset)
            pos = offset
            carry = b""
            while True:
                chunk = fh.read(_READ_CHUNK)
                if not chunk:
                    return
                data = carry + chunk
                nl = data.rfind(b"\n")
                if nl < 0:
                    carry = data
                    continue
                carry = data[nl + 1 :]
                lines = []
                at = pos
                for line in data[: nl + 1].split(b"\n")[:-1]:
                    lines.append((at, line))
                    at += len(line) + 1
                yield PendingLines(lines=lines, start=pos, end=at)
                pos = at


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one log line; raises ValueError when it is not an event object."""
    try:
        obj = json.loads(line)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj
