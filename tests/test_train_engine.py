"""The training engine on real MiniLM weights and banking77 rows: small, but the real path."""

from __future__ import annotations

import json

import pytest
from test_train_rows import banking_rows

from brewslm_core.train import CANCEL_FILE, TrainConfig, get_handler, read_trace, train
from brewslm_core.train.base_model import resolve_model_path
from brewslm_core.train.checkpoint import latest_checkpoint, list_checkpoints

pytestmark = pytest.mark.slow

TRACE_KEYS = {
    "step",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "real_tokens",
    "tokens_per_s",
    "samples",
    "ts",
}


def small(**over) -> TrainConfig:
    base = dict(
        task_profile="classification",
        method="lora",
        lr=1e-3,
        batch_size=8,
        max_length=32,
        threads=1,
        seed=7,
        max_steps=6,
        # the default (auto) is bf16 autocast on AMX/AVX512-BF16 CPUs; these tests compare runs'
        # numbers exactly, so fp32 on every machine (bf16 runs have their own tests)
        precision="fp32",
    )
    return TrainConfig(**{**base, **over})


def events_of(project, run_id):
    return project.events.list(run_id=run_id)


def test_classification_lowers_eval_loss_and_writes_run_folder(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 96)
    eval_rows = banking_rows(shared_data, 32, split="test")
    cfg = small(method="full", lr=2e-4, max_steps=6, checkpoint_every=2, keep_checkpoints=2)
    # the untrained model's eval loss, measured the same way the engine measures it
    handler = get_handler("classification")
    handler.setup(resolve_model_path("auto", "classification"), rows, cfg)
    before = handler.score(handler.build_model(cfg), eval_rows)["eval_loss"]

    result = train(project, cfg, rows, eval_rows)
    assert result.status == "completed", result.error
    assert result.run_id.startswith("exp-")
    assert result.eval["eval_loss"] < before - 0.1
    run = project.run_dir(result.run_id)
    plan = json.loads((run / "plan.json").read_text())
    assert plan["handler"] == "ClassificationHandler" and plan["config"]["max_steps"] == 6
    assert len(plan["handler_state"]["labels"]) == 4
    steps = read_trace(run / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == list(range(1, 7))
    assert TRACE_KEYS <= set(steps[0])
    assert all(s["real_tokens"] <= s["tokens"] for s in steps)
    assert read_trace(run / "trace.jsonl", "eval")[-1]["accuracy"] == result.eval["accuracy"]
    # keep-last-2 of the checkpoints at steps 2, 4 and 6
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-4", "step-6"]
    assert (run / "adapter" / "model.safetensors").is_file()
    assert (run / "adapter" / "head.safetensors").is_file()
    ev = events_of(project, result.run_id)
    assert list(ev["severity"]) == ["info"]
    payload = ev["payload"].iloc[0]
    assert payload["experiment_id"] == result.run_id
    assert payload["backend"] == "torch-cpu"
    assert payload["final_train_loss"] == pytest.approx(result.final_train_loss)


def _adapter_tensors(run_dir, files=("adapter_model.safetensors", "head.safetensors")):
    from safetensors.torch import load_file

    out = {}
    for name in files:
        out.update({f"{name}:{k}": v for k, v in load_file(str(run_dir / "adapter" / name)).items()})
    return out


def test_cancel_then_resume_matches_an_uninterrupted_run(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 40)
    # 40 rows / batch 8 = 5 steps per epoch; 7 steps cross an epoch boundary.
    # MiniLM dropout is on, so equality needs the RNG state restored too.
    cfg = small(max_steps=7, epochs=2, warmup_steps=2)
    full = train(project, cfg, rows)
    assert full.status == "completed", full.error

    seen: list[int] = []
    stop_after = 3

    def progress(step, total, msg):
        seen.append(step)

    def cancel():
        return bool(seen) and seen[-1] >= stop_after

    first = train(project, cfg, rows, cancel=cancel, progress=progress)
    assert first.status == "cancelled" and first.reason_code == "training_cancelled"
    assert first.steps == stop_after  # stopped before a 4th step ran
    run = project.run_dir(first.run_id)
    assert latest_checkpoint(run / "checkpoints").name == f"step-{stop_after}"
    ev = events_of(project, first.run_id)
    assert list(ev["reason_code"]) == ["training_cancelled"]

    resumed = train(project, cfg, rows, run_id=first.run_id, resume=True)
    assert resumed.status == "completed", resumed.error
    assert resumed.resumed_from_step == stop_after and resumed.steps == 7
    assert [s["step"] for s in read_trace(run / "trace.jsonl", "train")] == list(range(1, 8))
    want = _adapter_tensors(project.run_dir(full.run_id))
    got = _adapter_tensors(run)
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)


def test_max_steps_overrides_epochs_and_says_so(project, shared_data):
    rows = banking_rows(shared_data, 16)  # batch 8: 2 steps per epoch
    res = train(project, small(max_steps=5, epochs=1), rows)
    assert res.status == "completed", res.error
    assert res.steps == res.total_steps == 5  # not 2 (one epoch), as the HF Trainer does
    trace = read_trace(project.run_dir(res.run_id) / "trace.jsonl", "train")
    assert [t["step"] for t in trace] == [1, 2, 3, 4, 5] and trace[-1]["epoch"] == 2.5
    plan = json.loads((project.run_dir(res.run_id) / "plan.json").read_text())
    assert plan["steps_note"].startswith("max_steps=5 overrides epochs=1")
    notes = events_of(project, res.run_id)["payload"].iloc[0]["notes"]
    assert plan["steps_note"] in notes
    assert TrainConfig(epochs=3).total_steps(2) == 6 and TrainConfig(epochs=3).steps_note(2) is None


def test_cancel_file_timeout_and_oom_watchdog_are_recorded(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 32)
    steps: list[int] = []
    cfg = small(max_steps=50)

    def touch_cancel(step, total, msg):
        steps.append(step)
        if step == 2:  # another process asking to stop: a file in the run folder
            (project.run_dir(run_id) / CANCEL_FILE).touch()

    run_id = "exp-cancelfile"
    res = train(project, cfg, rows, run_id=run_id, progress=touch_cancel)
    assert res.status == "cancelled" and res.steps == 2 and steps == [1, 2]

    res = train(project, small(max_seconds=0.0), rows)
    assert res.status == "timeout" and res.reason_code == "training_timeout"
    assert list(events_of(project, res.run_id)["reason_code"]) == ["training_timeout"]

    # the RSS watchdog stops a resumed run and keeps the checkpoint it resumed from
    (project.run_dir(run_id) / CANCEL_FILE).unlink()
    res = train(project, small(max_steps=50, max_rss_mb=1), rows, run_id=run_id, resume=True)
    assert res.status == "oom" and res.reason_code == "training_oom"
    assert res.last_checkpoint.endswith("step-2")
    ev = events_of(project, run_id)
    assert list(ev["reason_code"])[0] == "training_oom"
    assert ev["severity"].iloc[0] == "error"


def test_bad_rows_give_runtime_error_with_traceback(project, shared_data):
    rows = banking_rows(shared_data, 16)
    rows[3] = {"record": {"text": "where is my card?"}}  # no label
    res = train(project, small(), rows)
    assert res.status == "failed" and res.reason_code == "training_runtime_error"
    assert "label" in res.error
    ev = events_of(project, res.run_id)
    assert list(ev["reason_code"]) == ["training_runtime_error"]
    assert "Traceback" in ev["payload"].iloc[0]["traceback"]


# A child process that trains with a checkpoint every step; its third save pauses after the
# weights file is written (the real save_file wrapped, nothing else changed) so the test can
# SIGKILL a real process in the middle of a real save.
CRASH_CHILD = r"""
import json, sys, time
from pathlib import Path
import safetensors.torch as st

root, rows_file, run_id = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real = st.save_file

def save_then_wait(tensors, filename, *args, **kwargs):
    real(tensors, filename, *args, **kwargs)
    if ".tmp-step-3-" in str(filename):
        (root / "SAVING").write_text(str(filename))
        time.sleep(600)  # the parent kills us here, half-way through the save

st.save_file = save_then_wait
from brewslm_core import Project
from brewslm_core.train import TrainConfig, train

config = TrainConfig(task_profile="classification", method="lora", lr=1e-3, batch_size=8,
                     max_length=32, threads=1, seed=7, max_steps=6, checkpoint_every=1,
                     keep_checkpoints=3)
rows = json.loads(rows_file.read_text())
train(Project.open(root), config, rows, run_id=run_id)
"""


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_usable(project, shared_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = banking_rows(shared_data, 32)
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(rows))
    run_id = "exp-killed"
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(project.root), str(rows_file), run_id],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = project.root / "SAVING"
    deadline = time.monotonic() + 600
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), child.communicate()[1][-3000:] if child.poll() is not None else "no save seen"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL

    root = project.run_dir(run_id) / "checkpoints"
    half = [p for p in root.iterdir() if p.name.startswith(".tmp-step-3-")]
    assert half and (half[0] / "weights.safetensors").is_file()  # killed mid-save, for real
    assert not (half[0] / "meta.json").exists()
    assert latest_checkpoint(root).name == "step-2"
    assert events_of(project, run_id).empty  # it died: no outcome was recorded

    resumed = train(project, small(max_steps=4, checkpoint_every=1, keep_checkpoints=3), rows,
                    run_id=run_id, resume=True)
    assert resumed.status == "completed" and resumed.resumed_from_step == 2, resumed.error
    assert [s["step"] for s in read_trace(project.run_dir(run_id) / "trace.jsonl", "train")] == [1, 2, 3, 4]
    assert latest_checkpoint(root).name == "step-4"
