"""Autopilot end to end on real banking77 rows (normal mode: a drop repair and a memory-fit
repair, recorded) and each of its three refusal codes; the CLI prints the plan first."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brewslm_core import Project
from brewslm_core.autopilot import STEPS, autopilot
from brewslm_core.mapping import read_imports

TRAIN = {"max_steps": 8, "batch_size": 64, "lr": 3e-3, "threads": 1, "max_length": 32}


@pytest.fixture(autouse=True)
def _own_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BREWSLM_CONFIG_DIR", str(tmp_path / "config"))


def source(shared: Path, folder: Path, empty: int) -> str:
    """100 rows over 4 intents plus ``empty`` rows whose text is blank (empty_text rejects)."""
    by: dict[str, list[str]] = {}
    with open(shared / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["category"], []).append(r["text"])
    labels = sorted(by)[:4]
    rows = [{"text": by[lab][i], "label": lab} for i in range(25) for lab in labels]
    rows += [{"text": " ", "label": labels[i % 4]} for i in range(empty)]
    path = folder / f"bank-{empty}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "label"])
        w.writeheader()
        w.writerows(rows)
    return f"csv:{path}"


def flight_events(project: Project, run_id: str) -> list[dict]:
    frame = project.events.query("SELECT stage, run_id, parent_run_id, severity, reason_code, summary "
                                 "FROM run_events ORDER BY id")
    return [{k: (None if isinstance(v, float) else v) for k, v in r.items()}
            for r in frame.to_dict(orient="records")]


@pytest.mark.slow
def test_normal_mode_end_to_end_with_recorded_repairs(project, shared_data, tmp_path) -> None:
    seen = []
    result = autopilot(project, source(shared_data, tmp_path, empty=5), "classification",
                       train=TRAIN, probe=False, max_memory_mb=650,
                       progress=lambda done, total, msg: seen.append((done, msg)))
    assert result.status == "completed", result.refusal
    assert result.run_id.startswith("autopilot-")
    names = [s.name for s in result.steps]
    assert names == list(STEPS)
    # the two safe repairs, applied and recorded
    (drop, fit) = result.repairs
    assert drop.step == "map" and drop.change == {"drop_reasons": ["empty_text"], "rows": 5}
    assert fit.step == "preflight" and fit.change["changes"]["batch_size"] < 64
    plan = json.loads((project.run_dir(result.outputs["train_run_id"]) / "plan.json").read_text())
    assert plan["config"]["batch_size"] == fit.change["changes"]["batch_size"]
    assert read_imports(project)[0]["accepted"] == 100
    # export follows the gates: done when the eval was promotable, skipped otherwise
    eval_step = next(s for s in result.steps if s.name == "eval")
    export_step = result.steps[-1]
    assert export_step.status == ("done" if eval_step.data["promotable"] else "skipped")
    if export_step.status == "done":
        assert (project.exports_dir / result.outputs["export_id"]).is_dir()
    # every event of the stages it drove sits under the flight (eval under its train run)
    events = flight_events(project, result.run_id)
    children = [e for e in events if e["stage"] != "autopilot"]
    assert children and all(
        e["parent_run_id"] == result.run_id or e["parent_run_id"] == result.outputs["train_run_id"]
        for e in children), children
    assert {e["stage"] for e in children} >= {"ingestion", "cleaning", "training", "eval"}
    repairs = [e for e in events if e["stage"] == "autopilot" and e["severity"] == "warning"
               and "repair" in e["summary"]]
    assert len(repairs) == 2
    assert seen and seen[-1][0] == len(STEPS)


def test_strict_mode_refuses_the_repair(project, shared_data, tmp_path) -> None:
    result = autopilot(project, source(shared_data, tmp_path, empty=5), "classification",
                       strict=True, train=TRAIN, probe=False)
    assert result.status == "refused"
    assert result.refusal["code"] == "autopilot_strict_mode_refused"
    assert "drop 5 rejected rows" in result.refusal["message"]
    assert read_imports(project) == []  # nothing committed
    last = flight_events(project, result.run_id)[-1]
    assert (last["reason_code"], last["severity"]) == ("autopilot_strict_mode_refused", "error")


def test_dropping_too_many_rows_is_blocked(project, shared_data, tmp_path) -> None:
    result = autopilot(project, source(shared_data, tmp_path, empty=40), "classification",
                       train=TRAIN, probe=False)
    assert result.status == "refused" and result.refusal["code"] == "autopilot_repair_blocked"
    assert "drop 40 of 140 rows (29%" in result.refusal["message"]
    assert read_imports(project) == []


def test_no_safe_plan_names_what_to_decide(project, shared_data, tmp_path) -> None:
    result = autopilot(project, source(shared_data, tmp_path, empty=0), "qa", train=TRAIN)
    assert result.status == "refused" and result.refusal["code"] == "autopilot_no_safe_plan"
    assert "no shape of" in result.refusal["message"] and "--task" in result.refusal["message"]
    assert "classification" in result.refusal["message"]  # what introspection did see
    other = autopilot(project, source(shared_data, tmp_path, empty=0), "poetry")
    assert other.refusal["code"] == "autopilot_no_safe_plan" and "no handler" in other.refusal["message"]


def test_cli_prints_the_plan_and_exits_3_on_refusal(tmp_path, shared_data) -> None:
    from brewslm_core.cli import app

    out = CliRunner().invoke(app, ["autopilot", source(shared_data, tmp_path, empty=40), "--task",
                                   "classification", "--project", str(tmp_path / "p")])
    assert out.exit_code == 3, out.output
    assert out.output.index("autopilot plan") < out.output.index("[1/8] introspect")
    assert "autopilot_repair_blocked" in out.output
