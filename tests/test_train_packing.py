"""Batch planning and packing: packed rows must give exactly what one-example-per-row gives."""

from __future__ import annotations

import pytest
from test_train_rows import alpaca_rows, banking_rows

from brewslm_core.train.config import TrainConfig, TrainConfigError
from brewslm_core.train.handlers import HANDLERS, IGNORE, Example, get_handler, lay_out
from brewslm_core.train.packing import pack_rows, plan_epoch


def test_plan_epoch_covers_every_example_once_and_is_reproducible():
    lengths = [5, 9, 3, 3, 12, 7, 7, 1, 30, 2, 8]
    a = plan_epoch(lengths, 3, seed=1, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(len(lengths)))
    assert a == plan_epoch(lengths, 3, seed=1, epoch=0)
    assert a != plan_epoch(lengths, 3, seed=1, epoch=1)
    rnd = plan_epoch(lengths, 3, seed=1, epoch=0, strategy="random")
    assert sorted(i for b in rnd for i in b) == list(range(len(lengths)))
    with pytest.raises(ValueError, match="unknown batching strategy"):
        plan_epoch(lengths, 3, seed=1, epoch=0, strategy="sorted")


def test_bucketing_puts_similar_lengths_together():
    lengths = list(range(1, 65)) * 2
    batches = plan_epoch(lengths, 8, seed=0, epoch=0, window_batches=64)
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread <= 4  # a random split of 1..64 would spread far wider


def test_bucketing_over_the_whole_epoch_cuts_one_length_order_into_batches():
    lengths = [(i * 37) % 101 + 1 for i in range(400)]
    whole = plan_epoch(lengths, 8, seed=3, epoch=0)  # window 0: the whole epoch
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in whole)
    # no two batches overlap in length
    assert all(hi <= nxt for (_, hi), (nxt, _) in zip(spans, spans[1:], strict=False))
    windows = plan_epoch(lengths, 8, seed=3, epoch=0, window_batches=5)

    def padding(plan):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in plan)

    assert padding(whole) < padding(windows)
    assert sorted(i for b in windows for i in b) == list(range(400))
    assert [min(b) for b in whole] != [min(b) for b in plan_epoch(lengths, 8, seed=3, epoch=1)]


def test_pack_rows_first_fit_respects_capacity():
    lengths = [7, 3, 5, 2, 8, 1]
    rows = pack_rows(lengths, 8)
    assert sorted(i for r in rows for i in r) == list(range(6))
    assert all(sum(lengths[i] for i in r) <= 8 for r in rows)
    assert len(rows) == 4  # 26 tokens need at least 4 rows of 8


def test_lay_out_restarts_positions_and_marks_segments():
    ex = [Example([1, 2, 3], 0), Example([4, 5], 1), Example([6], 0)]
    rows, groups = lay_out(ex, pad_id=0, packing=True, pack_length=4)
    assert rows.real_tokens == 6
    flat = {tuple(g) for g in groups}
    assert flat == {(0, 2), (1,)}  # first fit: the 1-token text fills the 3-token row
    r = groups.index([0, 2])
    assert rows.input_ids[r].tolist() == [1, 2, 3, 6]
    assert rows.position_ids[r].tolist() == [0, 1, 2, 0]
    assert rows.segment[r].tolist() == [0, 0, 0, 2]
    other = 1 - r
    assert rows.segment[other].tolist() == [1, 1, -1, -1]  # padding is marked -1


def test_config_lists_every_problem_at_once():
    bad = TrainConfig(task_profile="clasification", method="prefix-tuning", batch_size=0, lr=-1)
    with pytest.raises(TrainConfigError) as info:
        bad.check()
    msg = str(info.value)
    for part in ("clasification", "method", "batch_size", "lr must be positive"):
        assert part in msg
    with pytest.raises(TrainConfigError, match="unknown train config keys"):
        TrainConfig.from_dict({"learning_rate": 1e-4})


def test_dispatcher_knows_profiles_and_suggests_names():
    assert {"classification", "seq2seq"} <= set(HANDLERS.names())
    with pytest.raises(KeyError, match="did you mean 'classification'"):
        get_handler("clasification")


@pytest.mark.slow
def test_packed_classification_logits_equal_one_text_per_row(shared_data):
    import torch

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 40)
    cfg = TrainConfig(task_profile="classification", method="full", pack_length=64)
    handler = get_handler("classification")
    from brewslm_core.train.base_model import resolve_model_path

    handler.setup(resolve_model_path("auto", "classification"), rows, cfg)
    model = handler.build_model(cfg).eval()
    examples = [e for e in handler.encode(rows[:10]) if e is not None]
    packed = handler.collate(examples, packing=True)
    assert packed["input_ids"].shape[0] < len(examples)  # really shares rows
    with torch.no_grad():
        got = model(packed)
        want = torch.cat([model(handler.collate([e], packing=False)) for e in examples])
        padded = model(handler.collate(examples, packing=False))
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(padded, want, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_packed_sft_loss_equals_per_example_and_targets_are_assistant_only(shared_data):
    import torch

    torch.set_num_threads(1)
    rows = alpaca_rows(shared_data, 5)
    cfg = TrainConfig(task_profile="seq2seq", method="lora", max_length=128, pack_length=256)
    handler = get_handler("seq2seq")
    from brewslm_core.train.base_model import resolve_model_path

    handler.setup(resolve_model_path("auto", "seq2seq"), rows, cfg)
    examples = [e for e in handler.encode(rows) if e is not None]
    assert len(examples) == 5
    # the supervised tokens decode to exactly the assistant's answer and its end-of-turn
    answer = rows[0]["record"]["messages"][1]["content"]
    supervised = handler.tokenizer.decode([t for t in examples[0].target if t != IGNORE])
    assert supervised == answer + "<|im_end|>\n"
    model = handler.build_model(cfg).eval()
    batch = handler.collate(examples, packing=True)
    assert batch["input_ids"].shape[0] < len(examples)
    with torch.no_grad():
        packed, n = handler.loss(model, batch)
        singles = [handler.loss(model, handler.collate([e], packing=False)) for e in examples]
    assert n == sum(k for _, k in singles)
    torch.testing.assert_close(packed, sum(loss for loss, _ in singles), atol=1e-3, rtol=1e-5)
