"""Data-parallel training: two CPU ranks over gloo, started by `accelerate launch` as the plan
launches them, on a real prepared banking77 project and real MiniLM weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from brewslm_core import Project
from brewslm_core.preflight.launch import accelerate_config, config_yaml, launcher
from brewslm_core.train import read_trace
from brewslm_core.train.distributed import from_env, shard
from brewslm_core.train.engine import REPLICAS_DIR


# ---- pieces (fast) --------------------------------------------------------------------------
def test_shard_gives_every_rank_the_same_count_and_covers_every_batch() -> None:
    batches = [[i] for i in range(7)]
    parts = [shard(batches, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert sorted({b[0] for p in parts for b in p}) == list(range(7))
    assert parts[0][:2] == [[0], [3]] and parts[1][:2] == [[1], [4]]
    assert shard(batches, 0, 1) == batches
    assert shard([], 1, 2) == []


def test_from_env_reads_the_launcher_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    single = from_env()
    assert (single.rank, single.world, single.active, single.main) == (0, 1, False, True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    two = from_env()
    assert (two.rank, two.world, two.active, two.main) == (1, 2, True, False)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="outside WORLD_SIZE"):
        from_env()


# ---- two real ranks ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(project: Project, run_id: str, *sets: str, fsdp: bool = False) -> subprocess.CompletedProcess:
    """Start two ranks the way a plan's launch command does: accelerate reads the layout's
    config file and hands the processes to torch's launcher."""
    runtime = {"processes": 2, "main_process_port": _free_port(), "fsdp": fsdp}
    layout = {"kind": "fsdp" if fsdp else "multi-cpu", "device": "cpu", "processes": 2,
              "machines": 1, "threads_per_process": 1}
    config = project.root / f"accelerate-{run_id}.yaml"
    config.write_text(config_yaml(accelerate_config(layout, "fp32", runtime)), encoding="utf-8")
    env, argv = launcher(layout, str(config), runtime)
    assert argv[:2] == ["accelerate", "launch"]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *argv[2:],  # the venv's accelerate
        "-m", "brewslm_core.cli", "train", "run", str(project.root), "--resume", run_id, "--json",
    ]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)


# fp32 on every machine: the runs are compared across shardings (DDP, FSDP, one process), whose
# reductions add in different orders, which bf16 autocast (the default on AMX CPUs) would round apart
SETS = ("method=lora", "max_steps=2", "batch_size=4", "max_length=32", "threads=1", "lr=0.001",
        "precision=fp32")


@pytest.fixture()
def prepared(project: Project, shared_data: Path) -> Project:
    from test_preflight import banking, commit

    from brewslm_core.prepare import prepare

    commit(project, "b1", "classification", banking(shared_data, 48))
    prepare(project)
    return project


@pytest.mark.slow
def test_two_gloo_ranks_train_one_model_and_write_one_run(prepared: Project) -> None:
    run_id = "exp-ddp0001"
    out = _launch(prepared, run_id, *SETS)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = prepared.run_dir(run_id)

    events = prepared.events.list(stage="training", run_id=run_id).to_dict(orient="records")
    assert len(events) == 1 and events[0]["severity"] == "info"

    steps = read_trace(run_dir / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == [1, 2]
    # each rank trains a batch of at most 4 per step; the trace counts both ranks
    assert all(4 < s["samples"] <= 8 for s in steps), steps
    assert all(s["real_tokens"] > 0 and s["loss"] > 0 for s in steps)

    adapters = [p for p in run_dir.rglob("*.safetensors") if "checkpoints" not in p.parts]
    assert adapters and all(p.parent == run_dir / "adapter" for p in adapters)

    # the real check: both ranks ended with identical trainable weights ...
    sums = {p.name: p.read_text() for p in (run_dir / REPLICAS_DIR).glob("rank-*.sha256")}
    assert set(sums) == {"rank-0.sha256", "rank-1.sha256"}
    assert sums["rank-0.sha256"] == sums["rank-1.sha256"]
    # ... and the weights moved: LoRA's B matrices start at zero, the shared steps changed them
    from safetensors.torch import load_file

    saved = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    lora_b = [t for k, t in saved.items() if "lora_B" in k]
    assert lora_b and any(float(t.abs().sum()) > 0 for t in lora_b)
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["world_size"] == 2 and plan["total_steps"] == 2
    assert plan["sharding"] == "ddp" and plan["backend"] == "torch-cpu-ddp"
    assert events[0]["payload"]["backend"] == "torch-cpu-ddp"


@pytest.mark.slow
def test_a_cancel_stops_both_ranks_at_the_same_step(prepared: Project) -> None:
    run_id = "exp-ddp0002"
    run_dir = prepared.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "CANCEL").touch()
    out = _launch(prepared, run_id, *SETS)
    # both ranks leave the loop together (no hang); the CLI's exit 1 says "not completed"
    assert out.returncode != 0
    events = prepared.events.list(stage="training", run_id=run_id).to_dict(orient="records")
    assert [(e["severity"], e["reason_code"]) for e in events] == [("warning", "training_cancelled")]
    assert read_trace(run_dir / "trace.jsonl", "train") == []
    assert not (run_dir / "adapter").exists()
