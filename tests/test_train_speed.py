"""Speed levers (train/speed.py) keep the numbers: bf16 autocast, torch.compile, the AdamW kernel,
sparse embedding grads and the one-pass mean-and-clip reach the eager fp32 results on the same
batches, the fast dropout mask keeps dropout's distribution, and resume stays exact with the
levers on."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_train_engine import _adapter_tensors, small
from test_train_rows import banking_rows

from brewslm_core.train import TrainConfig, read_trace, train
from brewslm_core.train.config import TrainConfigError
from brewslm_core.train.distributed import Dist
from brewslm_core.train.sharding import Replicated
from brewslm_core.train.speed import (
    EmbeddingGrads,
    keep_mask,
    native_bf16,
    resolve_precision,
    tune_malloc,
    use_fast_dropout,
)

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
    # MiniLM's 19 dropout modules take the fast mask; malloc_reuse where the C library is glibc;
    # sparse embedding grads are off by default (measured slower in the whole loop)
    assert _plan(project, bf16)["speed"] == {
        "precision": "bf16", "compile": False, "adamw": "auto", "fast_dropout": 19,
        "sparse_embedding_grads": 0, "malloc_reuse": tune_malloc(), "fused_lm_loss": True,
    }
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


# ---- fast dropout ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_fast_dropout_mask_keeps_one_minus_p_scaled(p):
    import torch

    torch.manual_seed(0)
    like = torch.zeros(())
    mask = keep_mask((400, 1000), p, like)
    values = torch.unique(mask)
    assert len(values) == 2 and values[0] == 0 and float(values[1]) == pytest.approx(1 / (1 - p))
    kept = float((mask > 0).float().mean())
    # 400k Bernoulli draws: five standard errors is under 0.004
    assert abs(kept - (1 - p)) < 5 * (p * (1 - p) / 400_000) ** 0.5 + 2**-16
    assert float(mask.mean()) == pytest.approx(1.0, abs=0.01)  # unbiased, as nn.Dropout
    torch.manual_seed(0)
    assert torch.equal(keep_mask((400, 1000), p, like), mask)  # the seeded generator decides


def test_fast_dropout_module_trains_like_dropout_and_is_identity_in_eval():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.25), torch.nn.Dropout(0.0))
    assert use_fast_dropout(model, torch.device("meta")) == 0  # only CPU takes it
    assert use_fast_dropout(model, torch.device("cpu")) == 1  # p=0 is left alone
    assert isinstance(model[1], torch.nn.Dropout) and model[1].p == 0.25
    assert model.state_dict().keys() == {"0.weight", "0.bias"}
    x = torch.randn(64, 8, requires_grad=True)
    torch.manual_seed(3)
    y = model[1](x)
    dropped = y == 0
    assert 0 < int(dropped.sum()) < x.numel()
    torch.testing.assert_close(y[~dropped], x[~dropped] / 0.75)
    y.sum().backward()  # the gradient flows through the kept elements only, scaled alike
    torch.testing.assert_close(x.grad, (~dropped).float() / 0.75)
    model.eval()
    assert torch.equal(model[1](x), x)


# ---- sparse embedding grads and one-pass clip ---------------------------------------------------
def test_sparse_embedding_grads_skip_tied_and_frozen_tables_and_match_dense():
    import torch

    torch.manual_seed(0)
    table, tied, frozen = (torch.nn.Embedding(50, 4, padding_idx=0) for _ in range(3))
    head = torch.nn.Linear(4, 50, bias=False)
    head.weight = tied.weight  # an output layer sharing the table (a causal LM's tied head)
    frozen.weight.requires_grad_(False)
    model = torch.nn.ModuleDict({"table": table, "tied": tied, "head": head, "frozen": frozen})
    params = [p for p in model.parameters() if p.requires_grad]
    ids = torch.tensor([[0, 3, 3, 7], [9, 0, 7, 7]])
    dense = torch.autograd.grad(table(ids).pow(2).sum(), table.weight)[0]
    grads = EmbeddingGrads(model, params)
    assert grads.tables == [table]
    table(ids).pow(2).sum().backward()
    assert table.weight.grad.is_sparse
    grads.densify()
    buffer = table.weight.grad
    assert not buffer.is_sparse and torch.equal(buffer, dense)  # padding_idx row 0 stays zero
    table.weight.grad = None
    table(ids[:1]).sum().backward()
    grads.densify()
    assert table.weight.grad is buffer  # the same buffer, refilled: no fresh allocation per step
    assert torch.equal(buffer, torch.autograd.grad(table(ids[:1]).sum(), table.weight)[0].to_dense())


def test_one_pass_mean_and_clip_equals_divide_then_clip():
    import torch

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    for p in params:
        p.grad = torch.randn_like(p) * 40
    want = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for w, p in zip(want, params, strict=True):
        w.grad = p.grad / 8
    want_norm = float(torch.nn.utils.clip_grad_norm_(want, 1.0))
    assert want_norm > 1.0  # the clip really clips
    norm = Replicated(Dist()).clip(params, 1.0, 8)
    assert norm == pytest.approx(want_norm, rel=1e-6)
    for p, w in zip(params, want, strict=True):
        torch.testing.assert_close(p.grad, w.grad)
    assert Replicated(Dist()).clip(params, float("inf"), 1) == pytest.approx(1.0, rel=1e-5)


def test_sparse_embedding_grads_give_the_dense_weights_and_resume_exactly(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 40)
    cfg = small(method="full", lr=2e-4, max_steps=5, epochs=2, checkpoint_every=2,
                sparse_embedding_grads=True)
    dense = train(project, replace(cfg, sparse_embedding_grads=False), rows)
    sparse = train(project, cfg, rows)
    assert _plan(project, sparse)["speed"]["sparse_embedding_grads"] == 3  # word, position, type
    assert _plan(project, dense)["speed"]["sparse_embedding_grads"] == 0
    assert _losses(project, sparse) == pytest.approx(_losses(project, dense), rel=1e-5)
    full = ("model.safetensors", "head.safetensors")  # full fine-tuning: the whole encoder
    want = _adapter_tensors(project.run_dir(dense.run_id), full)
    got = _adapter_tensors(project.run_dir(sparse.run_id), full)
    assert any("word_embeddings" in key for key in want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)
    seen: list[int] = []
    first = train(project, cfg, rows, progress=lambda s, t, m: seen.append(s),
                  cancel=lambda: bool(seen) and seen[-1] >= 2)
    resumed = train(project, cfg, rows, run_id=first.run_id, resume=True)
    assert resumed.status == "completed" and resumed.resumed_from_step == 2, resumed.error
    assert _losses(project, resumed) == pytest.approx(_losses(project, sparse), rel=1e-6)
