"""Train from a real manifest: SmolLM2 SFT as a background task, MiniLM through the CLI."""

from __future__ import annotations

import json

import pytest
from test_train_rows import alpaca_rows, banking_rows
from typer.testing import CliRunner

from brewslm_core import tasks
from brewslm_core.cli import app
from brewslm_core.contracts.reasons import SHAPE_TASK_PROFILE
from brewslm_core.mapping.shapes import text_hash
from brewslm_core.mapping.store import append_commit
from brewslm_core.prepare import prepare
from brewslm_core.train import read_trace
from brewslm_core.train.checkpoint import list_checkpoints
from brewslm_core.train.runner import TASK_TARGET

pytestmark = pytest.mark.slow


def commit(project, shape: str, records: list[dict]) -> None:
    rows = [
        {
            "import_id": "imp-1",
            "row_index": i,
            "shape": shape,
            "task_profile": SHAPE_TASK_PROFILE[shape],
            "config_id": "cfg-1",
            "text_hash": text_hash(shape, rec),
            "record": rec,
        }
        for i, rec in enumerate(records)
    ]
    append_commit(
        project,
        rows,
        {"import_id": "imp-1", "config_id": "cfg-1", "shape": shape, "gold": False, "locator": "test:alpaca"},
    )


def test_sft_task_on_alpaca_manifest_writes_trace_checkpoint_adapter(project, shared_data):
    commit(project, "alpaca", [r["record"] for r in alpaca_rows(shared_data, 12)])
    manifest = prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=64)
    assert manifest.task_profile == "seq2seq"
    config = {
        "method": "lora",
        "lora_r": 4,
        "batch_size": 2,
        "max_steps": 3,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "threads": 1,
        "lr": 5e-4,
    }
    task_id = tasks.start(project, TASK_TARGET, {"config": config}, kind="train")
    status = tasks.wait(project, task_id, timeout=900)
    assert status.state == "succeeded", status.error
    result = status.result
    run = project.run_dir(result["run_id"])
    steps = read_trace(run / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s["real_tokens"] > 0 and s["loss"] > 0 for s in steps)
    assert "eval_loss" in read_trace(run / "trace.jsonl", "eval")[-1]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-2", "step-3"]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "adapter" / "tokenizer.json").is_file()
    plan = json.loads((run / "plan.json").read_text())
    assert plan["handler"] == "Seq2SeqHandler" and plan["config"]["max_length"] == 64
    assert plan["params"]["trainable"] < plan["params"]["total"] / 50  # LoRA, not full
    ev = project.events.list(run_id=result["run_id"])
    assert list(ev["severity"]) == ["info"]
    assert set(ev["payload"].iloc[0]) >= {"experiment_id", "backend", "final_train_loss"}


def test_cli_trains_from_manifest_and_prints_trace(project, shared_data):
    commit(project, "classification", [r["record"] for r in banking_rows(shared_data, 48)])
    prepare(project, task_profile="classification", eval_fraction=0.25, max_length=32)
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "train",
            "run",
            str(project.root),
            "--json",
            "--set",
            "max_steps=2",
            "--set",
            "threads=1",
            "--set",
            "batch_size=8",
        ],
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed" and result["steps"] == 2
    assert result["eval"]["n"] > 0
    trace = runner.invoke(app, ["train", "trace", str(project.root), result["run_id"], "--split", "train"])
    assert [json.loads(x)["step"] for x in trace.stdout.splitlines()] == [1, 2]
    bad = runner.invoke(app, ["train", "run", str(project.root), "--set", "method=prefix-tuning"])
    assert bad.exit_code == 2 and "method must be one of" in bad.output
    missing = runner.invoke(app, ["train", "cancel", str(project.root), "exp-nope"])
    assert missing.exit_code == 2
