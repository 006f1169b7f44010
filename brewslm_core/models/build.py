"""Build a converted model folder once: in a temp dir, under a file lock, then rename into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common import file_lock

MARKER = "brewslm-conversion.json"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The conversion record of a finished folder, or None when the folder is absent/incomplete."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_built(folder: Path, version: int) -> bool:
    marker = read_marker(folder)
    return marker is not None and marker.get("version") == version


def build_once(target: Path, version: int, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return ``target``, building it with ``build(tmp_dir)`` if no finished copy exists.

    The marker file is written last inside the temp dir and the dir is renamed into place, so a
    crash never leaves a folder that looks finished; the lock stops two processes (xdist workers,
    a notebook and the CLI) from converting at the same time.
    """
    if is_built(target, version):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(str(target) + ".lock"):
        if is_built(target, version):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
            started = time.perf_counter()
            info = build(tmp)
            record = {"version": version, **info}
            record["seconds"] = round(time.perf_counter() - started, 2)
            (tmp / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
            if target.exists():  # a stale or older-version folder: replace it
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
