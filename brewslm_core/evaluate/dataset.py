"""The rows an eval pack scores: a manifest split (verified against its sha256) or a named file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..project import Project


class EvalDatasetMissing(FileNotFoundError):
    """The pack's dataset is not there (no manifest, no such split, or the file is gone)."""


def row_id(row: dict[str, Any], index: int, name: str) -> str:
    """A stable example id: the row's text hash when prepare wrote one, else ``name:index``."""
    return str(row.get("text_hash") or f"{name}:{index}")


def load_rows(project: Project, dataset: dict[str, str], max_rows: int | None
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, facts about where they came from). Raises EvalDatasetMissing with what to do."""
    from ..contracts.prepare import Manifest, ManifestError

    if "split" in dataset:
        split = dataset["split"]
        try:
            manifest = Manifest.load(project, verify=False)
            rows = manifest.read_split(project, split)
        except ManifestError as exc:
            raise EvalDatasetMissing(f"eval dataset split {split!r}: {exc}") from exc
        entry = manifest.files[split]
        info = {"kind": "split", "name": split, "path": entry.path, "sha256": entry.sha256}
    else:
        rel = dataset["file"]
        path = Path(rel) if Path(rel).is_absolute() else project.root / rel
        if not path.is_file():
            raise EvalDatasetMissing(
                f"eval dataset file {rel} is missing ({path}); re-run prepare or point the pack's "
                "dataset at an existing .jsonl of prepared rows"
            )
        data = path.read_bytes()
        rows = []
        for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDatasetMissing(f"eval dataset file {rel} line {n} is not JSON: {exc}") from exc
            rows.append(row if isinstance(row.get("record"), dict) else {"record": row})
        info = {"kind": "file", "name": path.name, "path": rel, "sha256": hashlib.sha256(data).hexdigest()}
    if not rows:
        raise EvalDatasetMissing(f"eval dataset {info['name']} has no rows; prepare more data or pick "
                                 "another dataset in the pack")
    if max_rows:
        rows = rows[:max_rows]
    info["rows"] = len(rows)
    return rows, info
