"""The chunked output-layer loss (train/handlers/lm_loss.py) gives the plain path's loss and
gradients: over several chunks, with a trainable head, under bf16 autocast, without grad, and
inside the SFT handler on SmolLM2 with LoRA."""

from __future__ import annotations

import pytest
from test_train_rows import alpaca_rows

from brewslm_core.train import TrainConfig, get_handler
from brewslm_core.train.base_model import resolve_model_path
from brewslm_core.train.handlers import lm_loss


def _plain(hidden, weight, target):
    import torch

    return torch.nn.functional.cross_entropy((hidden @ weight.T).float(), target, reduction="sum")


def _case(tokens: int = 70, width: int = 24, vocab: int = 3000, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, width, generator=g)
    weight = torch.randn(vocab, width, generator=g) * 0.3
    target = torch.randint(0, vocab, (tokens,), generator=g)
    return hidden, weight, target


@pytest.fixture()
def small_chunks(monkeypatch):
    """Chunks of 16 rows, so a 70-token case runs five of them (the last one partial)."""
    monkeypatch.setattr(lm_loss, "CHUNK_BYTES", 16 * 4 * 3000)
    assert lm_loss.chunk_rows(3000) == 16


@pytest.mark.parametrize("trainable_head", [False, True])
def test_chunked_loss_and_grads_equal_the_plain_path(small_chunks, trainable_head):
    import torch

    hidden, weight, target = _case()
    want_h, got_h = hidden.clone().requires_grad_(), hidden.clone().requires_grad_()
    want_w, got_w = (weight.clone().requires_grad_(trainable_head) for _ in range(2))
    want = _plain(want_h, want_w, target)
    got = lm_loss.linear_cross_entropy(got_h, got_w, target)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-4)
    (2.5 * want).backward()  # the incoming gradient scales what the forward stored
    (2.5 * got).backward()
    torch.testing.assert_close(got_h.grad, want_h.grad, rtol=1e-5, atol=1e-6)
    if trainable_head:
        torch.testing.assert_close(got_w.grad, want_w.grad, rtol=1e-5, atol=1e-5)
    else:
        assert got_w.grad is None


def test_chunked_loss_under_bf16_autocast_matches_the_plain_bf16_path(small_chunks):
    import torch

    hidden, weight, target = _case()
    want_h, got_h = hidden.clone().requires_grad_(), hidden.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _plain(want_h, weight, target)
        got = lm_loss.linear_cross_entropy(got_h, weight, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-2)
    want.backward()
    got.backward()
    assert got_h.grad.dtype == hidden.dtype
    torch.testing.assert_close(got_h.grad, want_h.grad, rtol=2e-2, atol=2e-3)
    # a trainable head under bf16 takes the plain path (its gradient would add up in bf16)
    head = weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lm_loss.linear_cross_entropy(hidden, head, target).backward()
    assert head.grad is not None


def test_without_grad_the_loss_is_the_same_sum(small_chunks):
    import torch

    hidden, weight, target = _case()
    with torch.no_grad():
        got = lm_loss.linear_cross_entropy(hidden, weight, target)
    assert not got.requires_grad
    torch.testing.assert_close(got, _plain(hidden, weight, target), rtol=1e-6, atol=1e-4)


def test_only_a_plain_bias_free_linear_head_is_fused():
    import torch

    assert lm_loss.fits(torch.nn.Linear(4, 9, bias=False))
    assert not lm_loss.fits(torch.nn.Linear(4, 9))
    assert not lm_loss.fits(torch.nn.Embedding(9, 4))


@pytest.mark.slow
def test_sft_handler_fused_head_gives_the_plain_loss_and_lora_grads(shared_data):
    import torch

    torch.set_num_threads(1)
    rows = alpaca_rows(shared_data, 6)
    cfg = TrainConfig(task_profile="seq2seq", method="lora", lora_r=4, max_length=96, seed=3)
    handler = get_handler("seq2seq")
    handler.setup(resolve_model_path("auto", "seq2seq"), rows, cfg)
    model = handler.build_model(cfg)
    model.train()
    batch = handler.collate([e for e in handler.encode(rows) if e is not None], True)
    results = {}
    for fused in (False, True):
        handler.fused_head = fused
        model.zero_grad(set_to_none=True)
        loss, count = handler.loss(model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[fused] = (float(loss.detach()), count, grads)
    (plain, n_plain, g_plain), (fused, n_fused, g_fused) = results[False], results[True]
    assert n_plain == n_fused > 0
    # both against the loss in fp64 from the same hidden states: the fused sum (equal 512-row
    # chunks) is the closer one, the plain [tokens, vocab] fp32 path rounds more
    with torch.no_grad():
        hidden, keep = handler.supervised_hidden(model, batch)
        weight = model.get_output_embeddings().weight.double()
        exact = float(torch.nn.functional.cross_entropy(hidden.double() @ weight.T, batch["target"][keep],
                                                        reduction="sum"))
    assert fused == pytest.approx(exact, rel=1e-6)
    assert plain == pytest.approx(exact, rel=3e-5)
    # the gradient at the hidden states, against fp64: the fused one is no further off than plain's
    grads_h = {}
    for name, fn in (("plain", _plain), ("fused", lm_loss.linear_cross_entropy),
                     ("exact", lambda h, w, t: torch.nn.functional.cross_entropy(
                         h @ w.double().T, t, reduction="sum"))):
        h = hidden.detach().clone().double().requires_grad_() if name == "exact" \
            else hidden.detach().clone().requires_grad_()
        fn(h, model.get_output_embeddings().weight.detach(), batch["target"][keep]).backward()
        grads_h[name] = h.grad.double()
    err = {k: float((grads_h[k] - grads_h["exact"]).abs().max()) for k in ("plain", "fused")}
    assert err["fused"] <= max(err["plain"], 1e-7) * 1.5, err
    assert g_plain.keys() == g_fused.keys() and len(g_plain) > 0
    for name in g_plain:  # fp32 sums in another order: close against each tensor's own scale
        scale = float(g_plain[name].abs().max())
        torch.testing.assert_close(g_fused[name], g_plain[name], rtol=1e-3, atol=2e-3 * scale)
