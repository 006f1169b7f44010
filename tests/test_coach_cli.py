"""`brewslm coach` over a real committed project: text, --json in the seed's shape, one stage,
--run executing a suggestion, and clear errors."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from brewslm_core import coach, tasks
from brewslm_core.cli import app
from brewslm_core.mapping import commit


@pytest.fixture()
def committed(project, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("BREWSLM_CONFIG_DIR", str(tmp_path / "config"))
    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r, _ in zip(csv.DictReader(fh), range(50), strict=False)]
    src = tmp_path / "bank.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "category"])
        w.writeheader()
        w.writerows(rows)
    commit(project, f"csv:{src}", "classification", {"text": "text", "label": "category"})
    return project


def test_json_all_stages_and_one_stage(committed) -> None:
    run = CliRunner().invoke
    out = run(app, ["coach", str(committed.root), "--json"])
    assert out.exit_code == 0, out.output
    items = json.loads(out.output)
    expected = [s.to_dict() for st in coach.COACH_STAGES for s in coach.suggest(committed, st)]
    assert items == expected and all(set(i) == {"severity", "title", "body", "action"} for i in items)
    gold = json.loads(run(app, ["coach", str(committed.root), "gold_set", "--json"]).output)
    assert gold == [s.to_dict() for s in coach.suggest(committed, "gold_set")]
    text = run(app, ["coach", str(committed.root), "gold_set"])
    assert "CRITICAL: Your gold set has 0 rows" in text.output and "Label 300 more rows" in text.output


def test_run_executes_the_nth_suggestion_and_errors_are_clear(committed) -> None:
    run = CliRunner().invoke
    out = run(app, ["coach", str(committed.root), "cleaning", "--run", "1"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["status"] == "started"
    assert tasks.wait(committed, result["task_id"], timeout=120).state == "succeeded"
    bad = run(app, ["coach", str(committed.root), "deploy"])
    assert bad.exit_code == 2 and "unknown coach stage 'deploy'" in bad.output
    bad = run(app, ["coach", str(committed.root), "data", "--run", "9"])
    assert bad.exit_code == 2 and "--run must be between 1 and" in bad.output
    missing = run(app, ["coach", str(committed.root / "nope")])
    assert missing.exit_code == 2 and "not a BrewSLM project" in missing.output
