"""One exclusive, cross-process file lock for every writer that must go one at a time.

It is ``filelock.FileLock`` (a dependency of huggingface_hub, which transformers needs): an
flock on Unix, which the kernel drops when the holder dies, and the Windows equivalent elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def file_lock(path: str | os.PathLike[str], timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing); ``timeout`` < 0 waits forever."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(os.fspath(path), timeout=timeout, preserve_lock_file=True):
        yield
