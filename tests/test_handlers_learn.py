"""The generative and media handlers learn: the loss on one fixed batch goes down.

Each run trains on a few rows that form one batch (batch_size = the row count, no packing
change between steps), so step k's trace loss is the loss on that same batch after k - 1
updates: the last step's loss must be below the first's. A handler whose loss ignores its
inputs, whose labels are misaligned or whose adapters are frozen fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_handlers_generative import hotpot_rows
from test_handlers_media import _vqa_rows, demo_rows, fsdd_rows  # noqa: F401  (fixtures)
from test_train_rows import alpaca_rows

from brewslm_core.train import TrainConfig, read_trace, train

pytestmark = pytest.mark.slow


def _fixed_batch_losses(project, config: TrainConfig, rows: list[dict]) -> list[float]:
    result = train(project, config, rows)
    assert result.status == "completed", result.error
    steps = read_trace(Path(result.run_dir) / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == list(range(1, config.max_steps + 1))
    assert all(s["samples"] == len(rows) for s in steps)  # the same batch every step
    return [s["loss"] for s in steps]


def _assert_goes_down(losses: list[float]) -> None:
    assert losses[-1] < losses[0], losses


def test_seq2seq_loss_on_a_fixed_batch_goes_down(project, shared_data):
    rows = alpaca_rows(shared_data, 4)
    config = TrainConfig(task_profile="seq2seq", max_steps=4, batch_size=4, max_length=64,
                         lora_r=4, lr=2e-3, threads=2)
    _assert_goes_down(_fixed_batch_losses(project, config, rows))


def test_rag_loss_on_a_fixed_batch_goes_down(project, shared_data):
    rows = hotpot_rows(shared_data, 3)
    config = TrainConfig(task_profile="rag", max_steps=4, batch_size=3, max_length=128,
                         lora_r=4, lr=2e-3, threads=2)
    _assert_goes_down(_fixed_batch_losses(project, config, rows))


def test_audio_loss_on_a_fixed_batch_goes_down(project, fsdd_rows):  # noqa: F811
    names = ["3_jackson_1.wav", "8_theo_2.wav", "1_lucas_3.wav", "6_nicolas_4.wav"]
    config = TrainConfig(task_profile="audio_transcription", max_steps=4, batch_size=4,
                         max_length=16, lr=1e-3, threads=2)
    _assert_goes_down(_fixed_batch_losses(project, config, [fsdd_rows[n] for n in names]))


def test_vision_language_loss_on_a_fixed_batch_goes_down(project, shared_data):
    rows = _vqa_rows(shared_data, 4)
    config = TrainConfig(task_profile="vision_language", max_steps=4, batch_size=4,
                         max_length=160, lr=1e-3, threads=2)
    _assert_goes_down(_fixed_batch_losses(project, config, rows))
