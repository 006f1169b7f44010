"""Speed levers (train/speed.py) keep the numbers: bf16 autocast, torch.compile and the AdamW kernel
reach the eager fp32 losses on the same batches, and resume stays exact with the levers on."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_train_engine import _adapter_tensors, small
from test_train_rows import banking_rows

from brewslm_core.train import TrainConfig, read_trace, train
from brewslm_core.train.config import TrainConfigError
from brewslm_core.train.speed import native_bf16, resolve_precision

pytestmark = pytest.mark.slow


def _losses(project, result) -> list[float]:
    assert result.status == "completed", result.error
    return [t["loss"] for t in read_trace(project.run_dir(result.run_id) / "trace.jsonl", "train")]


def _plan(project, result) -> dict:
    return json.loads((project.run_dir(result.run_id) / "plan.json").read_text())


def test_bad_lever_values_are_rejected_with_the_choices():
    with pytest.raises(TrainConfigError, match="adamw must be one of"):
        TrainConfig(adamw="sgd").check()
    with pytest.raises(TrainConfigError, match="precision must be one of"):
        TrainConfig(precision="int8").check()
    TrainConfig(precision="auto", compile=True, adamw="foreach").check()


def test_auto_precision_follows_the_hardware():
    import torch

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert resolve_precision("auto", torch.device("meta")) == "fp32"


def test_bf16_steps_reach_the_fp32_losses_and_the_plan_records_it(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 48)
    fp32 = train(project, small(method="full", lr=2e-4, max_steps=3), rows)
    bf16 = train(project, small(method="full", lr=2e-4, max_steps=3, precision="bf16"), rows)
    want, got = _losses(project, fp32), _losses(project, bf16)
    assert len(want) == len(got) == 3
    # same seed, same batches, same dropout draws: only the matmul precision differs
    assert got == pytest.approx(want, rel=0.03)
    assert got != want  # bf16 really ran (bitwise-equal losses would mean autocast was off)
    assert _plan(project, bf16)["speed"] == {"precision": "bf16", "compile": False, "adamw": "auto"}
    auto = train(project, small(max_steps=1, precision="auto"), rows)
    assert _plan(project, auto)["speed"]["precision"] == resolve_precision("auto", torch.device("cpu"))


def test_adamw_kernels_give_the_same_weights(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 32)
    runs = {impl: train(project, small(max_steps=3, adamw=impl), rows) for impl in ("fused", "loop")}
    for res in runs.values():
        assert res.status == "completed", res.error
    want = _adapter_tensors(project.run_dir(runs["loop"].run_id))
    got = _adapter_tensors(project.run_dir(runs["fused"].run_id))
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)


def test_resume_is_exact_with_bf16_and_foreach_adamw(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 40)
    cfg = small(max_steps=5, epochs=2, precision="bf16", adamw="foreach", checkpoint_every=2)
    full = train(project, cfg, rows)
    assert full.status == "completed", full.error
    seen: list[int] = []
    first = train(project, cfg, rows, progress=lambda s, t, m: seen.append(s),
                  cancel=lambda: bool(seen) and seen[-1] >= 2)
    assert first.status == "cancelled" and first.steps == 2
    resumed = train(project, cfg, rows, run_id=first.run_id, resume=True)
    assert resumed.status == "completed" and resumed.resumed_from_step == 2, resumed.error
    assert _losses(project, resumed) == pytest.approx(_losses(project, full), rel=1e-5)
    want = _adapter_tensors(project.run_dir(full.run_id))
    got = _adapter_tensors(project.run_dir(first.run_id))
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)


def test_compiled_steps_reach_the_eager_losses(project, shared_data):
    import torch

    torch.set_num_threads(2)
    rows = banking_rows(shared_data, 16)
    cfg = small(max_steps=2, max_length=16)
    eager = train(project, cfg, rows)
    compiled = train(project, replace(cfg, compile=True), rows)
    want, got = _losses(project, eager), _losses(project, compiled)
    # inductor draws its own dropout masks (MiniLM's dropout is on in training), so the losses agree
    # to the dropout noise of an 8-example batch, not bitwise
    assert got == pytest.approx(want, rel=0.05), (got, want)
    assert _plan(project, compiled)["speed"]["compile"] is True
    # compiled in place: the saved weights carry the plain (uncompiled) names
    assert _adapter_tensors(project.run_dir(compiled.run_id)).keys() == _adapter_tensors(
        project.run_dir(eager.run_id)
    ).keys()
