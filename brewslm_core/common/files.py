"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Write a temp file beside the target, fsync it, ``os.replace`` it over the target, then fsync the
folder so the rename itself survives a power cut. A crash leaves at most a ``.tmp`` file behind.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a folder (its entries: renames, new files). A no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file to write; on a clean exit it is fsynced and renamed over ``path``.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_file(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_file(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, **dumps: Any
) -> Path:
    """``obj`` as JSON (UTF-8, non-ASCII kept), written atomically."""
    dumps.setdefault("ensure_ascii", False)
    return atomic_write_text(path, json.dumps(obj, indent=indent, **dumps))
