"""`brewslm prepare` through the real typer app."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from brewslm_core import Project
from brewslm_core.cli import app
from brewslm_core.contracts.prepare import Manifest
from brewslm_core.mapping.shapes import text_hash
from brewslm_core.mapping.store import append_commit


def _commit(project: Project, import_id: str, shape: str, profile: str, records: list[dict]):
    rows = [{"import_id": import_id, "row_index": i, "shape": shape, "task_profile": profile,
             "config_id": "c", "text_hash": text_hash(shape, r), "record": r}
            for i, r in enumerate(records)]
    append_commit(project, rows, {"import_id": import_id, "config_id": "c", "shape": shape,
                                  "gold": False, "locator": "test"})


def test_cli_prepare(project: Project, shared_data: Path) -> None:
    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        records = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(fh)][:300]
    _commit(project, "b1", "classification", "classification", records)
    _commit(project, "s1", "seq2seq", "seq2seq", [{"source": "a b c", "target": "c b a"}])
    runner = CliRunner()

    mixed = runner.invoke(app, ["prepare", str(project.root), "--json"])
    assert mixed.exit_code == 2
    assert json.loads(mixed.stdout)["reason_code"] == "adapter_schema_mismatch"

    res = runner.invoke(app, ["prepare", str(project.root), "--task-profile", "classification",
                              "--eval-fraction", "0.2", "--seed", "9", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["task_profile"] == "classification" and out["seed"] == 9
    assert out["counts"] == {"train": 240, "eval": 60, "gold": 0}
    assert out["excluded"] == {"other_task_profile": 1}
    assert Manifest.load(project).to_dict() == out

    table = runner.invoke(app, ["prepare", str(project.root), "--task-profile", "classification"])
    assert table.exit_code == 0 and "prepared: classification" in table.stdout

    bad = runner.invoke(app, ["prepare", str(project.root / "nope")])
    assert bad.exit_code == 2 and "not a BrewSLM project" in bad.output
