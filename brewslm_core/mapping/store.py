"""The committed-row store: ``data/synthetic.jsonl`` (append-only) + ``data/imports.jsonl``.

A commit appends its rows to synthetic.jsonl, fsyncs, and only then appends one line to
imports.jsonl naming the byte range it wrote. Readers read only byte ranges named in
imports.jsonl, so a crash mid-commit leaves none of that commit visible; the next commit cuts
the orphaned tail off before writing. An exclusive flock serialises committers across processes.

Each synthetic line: {"import_id", "row_index", "shape", "task_profile", "config_id",
"text_hash", "record"}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from ..common import file_lock
from ..project import Project


def read_imports(project: Project) -> list[dict[str, Any]]:
    """Every committed import, oldest first. A torn last line (crash) is ignored."""
    path = project.imports_path
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn write from a crash: not committed
            out.append(json.loads(line))
    return out


def _committed_end(imports: list[dict[str, Any]]) -> int:
    return max((imp["byte_end"] for imp in imports), default=0)


def append_commit(project: Project, rows: Iterable[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Append rows atomically; returns the import record written to imports.jsonl.

    ``meta`` must hold import_id; byte_start/byte_end/rows are filled in here. ``meta`` is read
    only after ``rows`` is consumed, so a generator may fill in counts as it goes; ``rows`` is
    consumed inside the commit lock.
    """
    with file_lock(project.data_dir / ".commit.lock"):
        imports = read_imports(project)
        start = _committed_end(imports)
        syn = project.synthetic_path
        syn.touch(exist_ok=True)
        with open(syn, "r+b") as fh:
            fh.truncate(start)  # drop an orphaned tail left by a crashed commit
            fh.seek(start)
            count = 0
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
            end = fh.tell()
        record = {**meta, "byte_start": start, "byte_end": end, "rows": count}
        _repair_torn_tail(project.imports_path)
        with open(project.imports_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return record


def _repair_torn_tail(path: os.PathLike[str]) -> None:
    """Cut a last line that has no newline (a crash mid-append) so the next append stays valid."""
    if not os.path.exists(path):
        return
    with open(path, "r+b") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_committed(project: Project, import_ids: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield committed rows (optionally only from some imports), in commit order."""
    wanted = set(import_ids) if import_ids is not None else None
    imports = [i for i in read_imports(project) if wanted is None or i["import_id"] in wanted]
    if not imports:
        return
    with open(project.synthetic_path, "rb") as fh:
        for imp in imports:
            fh.seek(imp["byte_start"])
            chunk = fh.read(imp["byte_end"] - imp["byte_start"])
            for line in chunk.splitlines():
                yield json.loads(line)
