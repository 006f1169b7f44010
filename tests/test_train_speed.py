"""Speed levers (train/speed.py) keep the numbers: bf16 autocast, torch.compile, the AdamW kernel,
sparse embedding grads and the one-pass mean-and-clip reach the eager fp32 results on the same
batches, the fast dropout mask keeps dropout's distribution, and resume stays exact with the
levers on."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch
from test_train_engine import _adapter_tensors, small
from test_train_rows import banking_rows

from brewslm_core.train import TrainConfig, read_trace, train
from brewslm_core.train.config import TrainConfigError
from brewslm_core.train.distributed import Dist
from brewslm_core.train.embedding_rows import EmbeddingRows
from brewslm_core.train.sharding import Replicated
from brewslm_core.train.speed import (
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
    # MiniLM's 19 dropout modules take the fast mask and its attention dropout too; malloc_reuse
    # where the C library is glibc; its 3 embedding tables train by rows; no LoRA layer to fuse
    assert _plan(project, bf16)["speed"] == {
        "precision": "bf16", "compile": False, "adamw": "auto", "fast_dropout": 19,
        "fast_attention_dropout": 1, "fused_lora": 0,
        "sparse_embedding_grads": 3, "malloc_reuse": tune_malloc(), "fused_lm_loss": True,
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
def _toy_model(torch):
    torch.manual_seed(0)
    table, tied, frozen = (torch.nn.Embedding(50, 4, padding_idx=0) for _ in range(3))
    head = torch.nn.Linear(4, 50, bias=False)
    head.weight = tied.weight  # an output layer sharing the table (a causal LM's tied head)
    frozen.weight.requires_grad_(False)
    return torch.nn.ModuleDict({"table": table, "tied": tied, "head": head, "frozen": frozen,
                                "out": torch.nn.Linear(4, 1)})


@pytest.mark.parametrize("decay", [0.0, 0.1])
@pytest.mark.parametrize("impl", ["fused", "foreach", "loop"])
def test_embedding_rows_adamw_equals_dense_adamw_and_resumes(decay, impl):
    """AdamW over the used rows of a sparse-grad table gives dense AdamW's weights and moments:
    rows used in one step and not the next keep moving on their moments, unused rows never move
    (but decay), tied and frozen tables stay dense; a new EmbeddingRows over the same optimizer
    state (a resume) finds the used rows again."""
    import torch

    from brewslm_core.train.speed import adamw_options

    def run(rows: bool, batches, state=None):
        model = _toy_model(torch)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=0.05, weight_decay=decay,
                                **adamw_options(impl, {}))
        sparse = EmbeddingRows(model, params) if rows else None
        if rows:
            assert sparse.tables == [model["table"]]
        if state is not None:
            model.load_state_dict(state[0])
            opt.load_state_dict(state[1])
        for ids in batches:
            if rows and state is not None:
                sparse = EmbeddingRows(model, params)  # resumed: the used rows from the moments
            x = model["table"](ids) + model["tied"](ids) + model["frozen"](ids)
            (model["out"](x).pow(2).sum() + model["head"](x).sum()).backward()
            if sparse:
                sparse.coalesce()
                assert model["table"].weight.grad.is_sparse
            norm = Replicated(Dist()).clip(params, 0.5, 2)
            if sparse:
                sparse.step(opt)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return model, opt, norm

    batches = [torch.tensor([[0, 3, 3, 7], [9, 0, 7, 7]]), torch.tensor([[5, 5, 1, 0]]),
               torch.tensor([[3, 12, 12, 40]]), torch.tensor([[0, 0, 0, 0]])]
    dense, dense_opt, dense_norm = run(False, batches)
    rows, rows_opt, rows_norm = run(True, batches)
    assert rows_norm == pytest.approx(dense_norm, rel=1e-6)
    for (name, want), got in zip(dense.state_dict().items(), rows.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)
    never = torch.tensor([r not in (0, 1, 3, 5, 7, 9, 12, 40) for r in range(50)])
    start = _toy_model(torch)["table"].weight
    moved = (rows["table"].weight != start).any(1)
    assert not moved[never].any() if not decay else moved[never].all()
    w = rows["table"].weight
    for key in ("exp_avg", "exp_avg_sq", "step"):  # the same state, in AdamW's own format
        torch.testing.assert_close(rows_opt.state[w][key], dense_opt.state[dense["table"].weight][key])
    # a resume after step 2, with the lever on, carries on exactly like the dense run
    half, half_opt, _ = run(True, batches[:2])
    resumed, _, _ = run(True, batches[2:], (half.state_dict(), half_opt.state_dict()))
    for (name, want), got in zip(dense.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)


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


# ---- attention dropout --------------------------------------------------------------------------
def test_fast_attention_is_sdpa_math_with_the_fast_mask_and_sdpa_otherwise():
    """Training with attention dropout on CPU: softmax(q k^T * scale, masked) * keep / (1 - p) @ v,
    with keep drawn by keep_mask from the same generator state, gradients included; eval (no
    dropout) is transformers' sdpa itself."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from brewslm_core.train.attention import attention
    from brewslm_core.train.speed import keep_mask

    torch.manual_seed(0)
    module = torch.nn.Module()
    q, k, v = (torch.randn(2, 3, 5, 4, requires_grad=True) for _ in range(3))
    seg = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, -1]])
    mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1)  # block-diagonal, bool
    torch.manual_seed(5)
    got, _ = attention(module, q, k, v, mask, dropout=0.25, scaling=0.3)
    torch.manual_seed(5)
    scores = (q @ k.transpose(-2, -1) * 0.3).masked_fill(~mask, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, -1)
    want = ((probs * keep_mask(probs.shape, 0.25, probs)) @ v).transpose(1, 2)
    torch.testing.assert_close(got, want)
    grads = torch.autograd.grad(got.pow(2).sum(), (q, k, v))
    for g, w in zip(grads, torch.autograd.grad(want.pow(2).sum(), (q, k, v)), strict=True):
        torch.testing.assert_close(g, w)
    assert got.shape == (2, 5, 3, 4) and got.is_contiguous()
    plain, _ = attention(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    sdpa, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.3)
    torch.testing.assert_close(plain, sdpa)


def test_minilm_trains_through_the_fast_attention_and_scores_with_sdpa(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 16)
    fast = train(project, small(max_steps=2), rows, rows[:8])
    native = train(project, small(max_steps=2, fast_dropout=False), rows, rows[:8])
    assert _plan(project, fast)["speed"]["fast_attention_dropout"] == 1  # MiniLM's one config
    assert _plan(project, native)["speed"]["fast_attention_dropout"] == 0
    # different masks, the same model: the losses agree to the dropout noise
    assert _losses(project, fast) == pytest.approx(_losses(project, native), rel=0.05)
    # the end-of-run eval (the trained model, in eval mode: no dropout, so sdpa) equals the eval of
    # the saved weights reloaded with plain sdpa
    from brewslm_core.train import get_handler
    from brewslm_core.train.base_model import resolve_model_path

    plan = _plan(project, fast)
    handler = get_handler("classification")
    path = resolve_model_path("auto", "classification")
    handler.setup(path, rows, small())
    model = handler.restore(path, project.run_dir(fast.run_id) / "adapter", plan["handler_state"], small())
    assert model.encoder.config._attn_implementation == "sdpa"
    again = handler.score(model, rows[:8])
    assert again["eval_loss"] == pytest.approx(fast.eval["eval_loss"], rel=1e-5)


# ---- fused LoRA linear --------------------------------------------------------------------------
def test_fused_lora_linear_equals_peft_values_and_grads():
    import torch
    from peft import LoraConfig, get_peft_model

    from brewslm_core.train.fused_lora import use_fused_lora

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.GELU(), torch.nn.Linear(20, 7, bias=False))
    x = torch.randn(3, 5, 12)

    def model(fused: bool):
        torch.manual_seed(1)
        m = get_peft_model(base, LoraConfig(r=4, lora_alpha=12, target_modules=["0", "2"],
                                            init_lora_weights=False))  # B != 0: the adapter counts
        if fused:
            assert use_fused_lora(m) == 2
        return m

    plain, fused = model(False), model(True)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    outs = [m(xi) for m, xi in zip((plain, fused), xs, strict=True)]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-6, atol=1e-6)
    for out in outs:
        out.pow(2).sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-5, atol=1e-6)
    got = {n: p.grad for n, p in fused.named_parameters() if p.requires_grad}
    want = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    assert got.keys() == want.keys() and len(got) == 4
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in fused.parameters() if not p.requires_grad)  # frozen base
    assert type(fused.base_model.model[0]).__name__ == "FusedLoraLinear"
    layers = fused.base_model.model
    alone = layers[2].base_layer(layers[1](layers[0].base_layer(x)))
    assert not torch.allclose(outs[1], alone)
    with fused.disable_adapter():  # a reference pass (alignment): the base alone, as peft does
        torch.testing.assert_close(fused(x), alone)


def test_fused_lora_under_autocast_rounds_as_peft_does_and_keeps_the_base_cast():
    """Under bf16 autocast the fused layer gives peft's values and gradients to bf16 rounding, in
    bf16 like autocast's linear, with fp32 adapter gradients; the frozen base weight is cast
    once (kept beside the layer, not in its state dict) and cast again when it changes."""
    import torch
    from peft import LoraConfig, get_peft_model

    from brewslm_core.train.fused_lora import use_fused_lora

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.GELU(), torch.nn.Linear(48, 16, bias=False))
    x = torch.randn(3, 9, 32)

    def model(fused: bool):
        torch.manual_seed(1)
        m = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["0", "2"],
                                                           init_lora_weights=False))
        if fused:
            assert use_fused_lora(m) == 2
        return m

    plain, fused = model(False), model(True)
    outs = []
    for m in (plain, fused):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
        out.float().pow(2).sum().backward()
        outs.append(out)
    assert outs[1].dtype == outs[0].dtype == torch.bfloat16
    torch.testing.assert_close(outs[1], outs[0], rtol=2e-2, atol=2e-2)
    want = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    got = {n: p.grad for n, p in fused.named_parameters() if p.requires_grad}
    assert got.keys() == want.keys() and all(g.dtype == torch.float32 for g in got.values())
    for name in want:  # bf16 products summed over 27 tokens: compare relative to the norm
        assert (got[name] - want[name]).norm() <= 1e-2 * want[name].norm(), name
    layer = fused.base_model.model[0].get_base_layer()
    kept = layer.__dict__["_brewslm_cast"][1]
    assert kept.dtype == torch.bfloat16 and not any("cast" in k for k in fused.state_dict())
    with torch.no_grad():
        layer.weight.mul_(2)  # an in-place change: the next forward casts again
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused(x)
    torch.testing.assert_close(layer.__dict__["_brewslm_cast"][1], (kept.float() * 2).bfloat16())


def test_attention_under_cpu_autocast_runs_in_fp32():
    """A causal, grouped-query attention (no dropout) under CPU bf16 autocast: our attention runs
    it in fp32 (the CPU's bf16 kernel is slower on short rows): exactly sdpa's fp32 result."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from brewslm_core.train.attention import attention

    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    q = torch.randn(2, 6, 7, 8, requires_grad=True)
    k, v = (torch.randn(2, 2, 7, 8, requires_grad=True) for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = attention(module, q, k, v, None, dropout=0.0, scaling=0.3)
        half, _ = sdpa_attention_forward(module, q, k, v, None, dropout=0.0, scaling=0.3)
    want, _ = sdpa_attention_forward(module, q, k, v, None, dropout=0.0, scaling=0.3)
    assert got.dtype == torch.float32 and half.dtype == torch.bfloat16
    torch.testing.assert_close(got, want)
    assert not torch.equal(half.float(), want)  # what autocast alone would have given


@pytest.mark.skipif(not native_bf16(torch.device("cpu")),
                    reason="no native bf16 on this CPU: emulated bf16 steps of SmolLM2 take minutes")
def test_lora_sft_in_bf16_trains_fused_with_fp32_attention(project, shared_data):
    """A SmolLM2 LoRA run in bf16 takes the fused layers and the fp32 attention (the plan says
    so) and reaches the fp32 run's losses to bf16 rounding (3 steps at lr 1e-3: within 5%)."""
    from test_train_rows import alpaca_rows

    rows = alpaca_rows(shared_data, 8)
    cfg = TrainConfig(task_profile="seq2seq", method="lora", lora_r=4, lr=1e-3, max_steps=3,
                      batch_size=4, max_length=96, threads=1, precision="fp32")
    fp32 = train(project, cfg, rows)
    bf16 = train(project, replace(cfg, precision="bf16"), rows)
    speed = _plan(project, bf16)["speed"]
    assert speed["precision"] == "bf16" and speed["fused_lora"] > 0 and speed["fast_attention_dropout"] == 1
    assert _plan(project, fp32)["speed"]["fast_attention_dropout"] == 0  # no dropout: plain sdpa
    assert _losses(project, bf16) == pytest.approx(_losses(project, fp32), rel=5e-2)


def test_fused_lora_run_gives_the_peft_run_and_the_plan_says_so(project, shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 32)
    fused = train(project, small(max_steps=3), rows)
    plain = train(project, small(max_steps=3, fused_lora=False), rows)
    assert _plan(project, fused)["speed"]["fused_lora"] > 0
    assert _plan(project, plain)["speed"]["fused_lora"] == 0
    assert _losses(project, fused) == pytest.approx(_losses(project, plain), rel=1e-5)
    want = _adapter_tensors(project.run_dir(plain.run_id))
    got = _adapter_tensors(project.run_dir(fused.run_id))
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)
