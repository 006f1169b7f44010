"""Preflight through the real code path: banking77 rows committed and prepared for real, the real
MiniLM config and weights, the real engine for the probe, the real event store."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from brewslm_core import Project
from brewslm_core.contracts.preflight import TrainPlan
from brewslm_core.contracts.reasons import SHAPE_TASK_PROFILE
from brewslm_core.mapping.shapes import text_hash
from brewslm_core.mapping.store import append_commit
from brewslm_core.preflight import (
    PLAN_FILE,
    PreflightError,
    detect_hardware,
    load_plan,
    preflight,
)
from brewslm_core.prepare import prepare

pytestmark = pytest.mark.slow  # loads model configs (and, for the probe, trains two steps)


# ---- helpers ------------------------------------------------------------------------------
def commit(project: Project, import_id: str, shape: str, records: list[dict], gold: bool = False
           ) -> None:
    rows = [
        {"import_id": import_id, "row_index": i, "shape": shape,
         "task_profile": SHAPE_TASK_PROFILE[shape], "config_id": f"cfg-{import_id}",
         "text_hash": text_hash(shape, rec), "record": rec}
        for i, rec in enumerate(records)
    ]
    append_commit(project, rows, {"import_id": import_id, "config_id": f"cfg-{import_id}",
                                  "shape": shape, "gold": gold, "locator": f"test:{import_id}"})


def banking(shared: Path, n: int, split: str = "test", skip: int = 0) -> list[dict]:
    """``n`` rows over the first 8 intents, interleaved (the file is sorted by intent)."""
    with open(shared / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as fh:
        by_label: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by_label.setdefault(r["category"], []).append(r["text"])
    labels = sorted(by_label)[:8]
    out = []
    for i in range(skip, skip + 40):
        for label in labels:
            if i < len(by_label[label]) and len(out) < n:
                out.append({"text": by_label[label][i], "label": label})
    return out


def training_events(project: Project) -> list[dict]:
    return project.events.list(stage="training").to_dict(orient="records")


@pytest.fixture()
def prepared(project: Project, shared_data: Path) -> Project:
    commit(project, "b1", "classification", banking(shared_data, 240))
    prepare(project)
    return project


def set_gates(project: Project, **values) -> None:
    # a new dict: Project.create shares nested config tables with its defaults, so an in-place
    # change would leak into every project created later in this process
    project.config = {**project.config, "gates": {**project.config["gates"], **values}}
    project.save_config()


def big_config(**over):
    base = {"method": "full", "batch_size": 64, "max_length": 64}
    return {**base, **over}


# ---- passing on the default -------------------------------------------------------------
def test_default_passes_probes_and_writes_the_plan(prepared: Project) -> None:
    report = preflight(prepared)
    assert report.passed, report.blockers
    assert report.mode == "strict"  # the project's [gates] policy
    assert not report.blockers
    assert {r.name for r in report.checks} >= {"manifest", "config", "dependency", "model",
                                               "capability", "memory", "gates", "probe"}
    # no eval pack exists yet and no gold import was committed: warnings, not blockers
    codes = {w.code for w in report.warnings}
    assert {"gold_set_missing", "gates_not_declared"} <= codes

    path = Path(report.plan_path)
    assert path == prepared.run_dir(report.run_id) / PLAN_FILE
    data = json.loads(path.read_text())
    assert set(data) == {f.name for f in dataclasses.fields(TrainPlan)}
    assert data["run_id"] == report.run_id and data["handler"] == "ClassificationHandler"
    assert data["model"]["name"] == "all-minilm-l6-v2" and data["model"]["kind"] == "encoder"
    assert data["lora"]["r"] == 16 and data["method"] == "lora"
    assert data["train_rows"] == prepared_counts(prepared)["train"]
    assert data["total_steps"] == -(-data["train_rows"] // 16)  # one epoch of batch 16
    assert data["memory"]["fits"] and data["memory"]["total_mb"] > data["memory"]["overhead_mb"]
    assert load_plan(prepared, report.run_id).to_dict() == report.plan.to_dict()
    assert data["accelerate"]["layout"]["runtime_profile"] == "cpu-small"

    probe = data["probe"]
    assert probe["status"] == "completed" and probe["steps"] == 2
    assert probe["seconds_per_step"] > 0 and len(probe["step_seconds"]) == 2
    assert data["estimated_seconds"] == pytest.approx(probe["seconds_per_step"]
                                                      * data["total_steps"], rel=1e-3)
    probe_dir = prepared.run_dir(probe["run_id"])
    assert probe["run_id"] == f"{report.run_id}/probe"
    assert (probe_dir / "trace.jsonl").is_file()
    assert not (probe_dir / "adapter").exists()  # the probe's weights are thrown away

    # the accelerate config is a file accelerate itself reads back
    from accelerate.commands.config.config_args import ClusterConfig

    acc = ClusterConfig.from_yaml_file(str(prepared.root / data["accelerate"]["config_path"]))
    assert acc.num_processes == 1 and acc.use_cpu
    assert f"--resume {report.run_id}" in data["accelerate"]["launch_command"]

    events = training_events(prepared)
    by_run = {e["run_id"]: e for e in events}
    assert by_run[report.run_id]["severity"] == "info"
    assert by_run[probe["run_id"]]["summary"].startswith("preflight probe: 2 training steps")
    assert by_run[probe["run_id"]]["payload"]["kind"] == "probe"
    assert "training finished" not in " ".join(e["summary"] for e in events)


def prepared_counts(project: Project) -> dict:
    return json.loads(project.manifest_path.read_text())["counts"]


# ---- memory -------------------------------------------------------------------------------
def test_strict_blocks_when_memory_does_not_fit_and_the_suggestion_fits(prepared: Project) -> None:
    roomy = preflight(prepared, big_config(), probe=False, max_memory_mb=100_000)
    assert roomy.passed and roomy.estimate.fits
    need = roomy.estimate.total_mb
    budget = need * 0.8
    report = preflight(prepared, big_config(), probe=False, max_memory_mb=budget)
    assert not report.passed and report.plan_path is None
    [item] = [b for b in report.blockers if b.check == "memory"]
    assert item.code == "memory_does_not_fit" and item.suggestion is not None
    changes = item.suggestion["changes"]
    assert item.suggestion["estimate_mb"] <= budget
    # halving the micro-batch with more accumulation is tried first: same effective batch
    if "batch_size" in changes:
        assert changes["batch_size"] * changes["grad_accum"] == 64
    probe_row = [r for r in report.checks if r.name == "probe"][0]
    assert probe_row.status == "skip"

    [event] = [e for e in training_events(prepared) if e["run_id"] == report.run_id]
    assert event["severity"] == "error" and event["reason_code"] == "training_dispatch_error"
    assert event["payload"]["blockers"][0]["code"] == "memory_does_not_fit"

    # the suggested change passes the memory check at the same budget
    fixed = preflight(prepared, big_config(**changes), probe=False, max_memory_mb=budget)
    assert fixed.estimate.fits and fixed.estimate.total_mb == item.suggestion["estimate_mb"]
    assert not [b for b in fixed.blockers if b.check == "memory"]


def test_fail_open_turns_blockers_into_warnings(prepared: Project) -> None:
    report = preflight(prepared, big_config(), mode="fail-open", max_memory_mb=200)
    assert report.passed and not report.blockers
    assert "memory_does_not_fit" in {w.code for w in report.warnings}
    assert all(r.status != "block" for r in report.checks)
    # nothing fits under the framework's own footprint: no suggestion, a plain instruction
    [item] = [w for w in report.warnings if w.code == "memory_does_not_fit"]
    assert item.suggestion is None and "smaller base model" in item.fix
    assert report.plan is not None and report.plan.probe["status"] == "skipped"
    assert Path(report.plan_path).is_file()
    [event] = [e for e in training_events(prepared) if e["run_id"] == report.run_id]
    assert event["severity"] == "warning" and event["reason_code"] == "training_dispatch_error"


def test_project_gate_policy_picks_the_mode(prepared: Project) -> None:
    set_gates(prepared, policy="fail-open")
    report = preflight(Project.open(prepared.root), big_config(), probe=False, max_memory_mb=200)
    assert report.mode == "fail-open" and report.passed


# ---- capability ---------------------------------------------------------------------------
def test_precision_the_device_lacks_blocks(prepared: Project) -> None:
    hw = detect_hardware()
    without = dataclasses.replace(hw, bf16={"cpu": False})
    report = preflight(prepared, {"precision": "bf16", "device": "cpu"}, probe=False,
                       hardware=without)
    [item] = [b for b in report.blockers if b.check == "capability"]
    assert item.code == "precision_unsupported" and item.suggestion == {"precision": "fp32"}
    with_bf16 = dataclasses.replace(hw, bf16={"cpu": True})
    report = preflight(prepared, {"precision": "bf16", "device": "cpu"}, probe=False,
                       hardware=with_bf16)
    assert not [b for b in report.blockers if b.check == "capability"]
    assert report.estimate.basis["activation_bytes"] < 4  # autocast halves saved activations


def test_auto_precision_is_picked_for_the_hardware_and_written_into_the_plan(prepared: Project) -> None:
    hw = detect_hardware()
    for native, want in ((True, "bf16"), (False, "fp32")):
        report = preflight(prepared, {"precision": "auto", "device": "cpu"}, probe=False,
                           hardware=dataclasses.replace(hw, bf16={"cpu": native}))
        assert report.plan is not None, report.blockers
        assert report.plan.precision == want and report.plan.config["precision"] == want
        accelerate = yaml.safe_load(report.plan.accelerate["config_yaml"])
        assert accelerate["mixed_precision"] == ("bf16" if want == "bf16" else "no")


def test_cuda_asked_for_without_a_gpu_blocks(prepared: Project) -> None:
    no_gpu = dataclasses.replace(detect_hardware(), cuda_devices=())
    report = preflight(prepared, {"device": "cuda"}, probe=False, hardware=no_gpu)
    assert "device_unavailable" in {b.code for b in report.blockers}


def test_a_causal_lm_cannot_train_classification(prepared: Project) -> None:
    report = preflight(prepared, {"base": "smollm2"}, probe=False)
    codes = {b.code for b in report.blockers}
    assert "model_kind_unsuitable" in codes
    item = [b for b in report.blockers if b.code == "model_kind_unsuitable"][0]
    assert "causal_lm" in item.message and "encoder" in item.message


def test_a_task_profile_without_a_handler_blocks(prepared: Project, monkeypatch) -> None:
    from brewslm_core.train import HANDLERS

    # as in a build where the classification handler is not registered (the registry has no
    # public way to drop a name; monkeypatch puts it back after the test)
    monkeypatch.delitem(HANDLERS._items, "classification")
    report = preflight(prepared)
    assert not report.passed
    [item] = [b for b in report.blockers if b.code == "no_handler"]
    assert "'classification'" in item.message and "seq2seq" in item.message
    assert [r.status for r in report.checks if r.name == "probe"] == ["skip"]
    [event] = [e for e in training_events(prepared) if e["run_id"] == report.run_id]
    assert event["severity"] == "error" and event["reason_code"] == "training_dispatch_error"


# ---- manifest and gates -------------------------------------------------------------------
def test_missing_then_tampered_manifest_blocks(project: Project, shared_data: Path) -> None:
    report = preflight(project, probe=False)
    assert not report.passed and report.plan is None
    assert report.blockers[0].code == "manifest_unusable"
    with pytest.raises(PreflightError, match="run preflight first"):
        load_plan(project, report.run_id)
    assert "run prepare first" in report.blockers[0].message

    commit(project, "b1", "classification", banking(shared_data, 80))
    prepare(project)
    with open(project.prepared_dir / "train.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"record": {"text": "sneaked in", "label": "x"}}\n')
    report = preflight(project, probe=False)
    assert report.blockers[0].code == "manifest_unusable"
    assert "changed since prepare" in report.blockers[0].message


def test_gold_set_size_against_the_coach_thresholds(project: Project, shared_data: Path) -> None:
    commit(project, "b1", "classification", banking(shared_data, 200))
    commit(project, "g1", "classification", banking(shared_data, 120, split="train"), gold=True)
    prepare(project)
    report = preflight(project, probe=False)
    [item] = [w for w in report.warnings if w.code.startswith("gold_set")]
    assert item.code == "gold_set_below_comfortable"
    assert item.suggestion == {"add_gold_rows": 300 - item.details["gold_rows"]}
    assert report.passed


def test_declared_gates_in_the_project_config_count(prepared: Project) -> None:
    set_gates(prepared, min_accuracy=0.8)
    report = preflight(Project.open(prepared.root), probe=False)
    assert "gates_not_declared" not in {w.code for w in report.warnings}


def test_unknown_mode_is_a_usage_error(prepared: Project) -> None:
    with pytest.raises(PreflightError, match="strict"):
        preflight(prepared, mode="lenient")


def test_the_plans_launch_command_trains_into_the_planned_run(prepared: Project) -> None:
    """The command string the plan carries, run as written (a single CPU process)."""
    import os
    import shlex
    import subprocess
    import sys

    report = preflight(prepared, {"max_steps": 1, "batch_size": 4, "threads": 1}, probe=False)
    command = report.plan.accelerate["launch_command"]
    argv = shlex.split(command)
    assert argv[:2] == ["accelerate", "launch"] and "--set" in argv
    bin_dir = str(Path(sys.executable).parent)  # the venv's accelerate
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    run = prepared.run_dir(report.run_id)
    plan = json.loads((run / "plan.json").read_text())  # the engine's own record of the run
    assert plan["config"]["max_steps"] == 1 and plan["config"]["batch_size"] == 4
    assert (run / "adapter").is_dir() and (run / PLAN_FILE).is_file()
