"""method="qlora": LoRA adapters over a 4-bit NF4 base (bitsandbytes), through the real engine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_train_rows import alpaca_rows

from brewslm_core.preflight.deps import required_packages
from brewslm_core.train import TrainConfig, read_trace, train
from brewslm_core.train.config import TrainConfigError
from brewslm_core.train.engine import resolve_model_path
from brewslm_core.train.handlers import ClassificationHandler, Seq2SeqHandler
from brewslm_core.train.handlers.lora import count_params


def qlora_config(**kw) -> TrainConfig:
    base = {"task_profile": "seq2seq", "method": "qlora", "max_steps": 2, "batch_size": 2,
            "max_length": 64, "threads": 1, "lora_r": 4, "lr": 1e-3}
    return TrainConfig(**{**base, **kw})


def model_bytes(model) -> int:
    """What the built model holds in weights: parameters plus buffers (4-bit ones packed)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_config_and_preflight_know_qlora():
    assert qlora_config().problems() == []
    with pytest.raises(TrainConfigError, match="qlora"):
        TrainConfig(method="q-lora").check()
    with pytest.raises(TrainConfigError, match="lora_r"):
        qlora_config(lora_r=0).check()
    needed = {p: blocking for p, _, _, blocking in required_packages("seq2seq", "qlora", "smollm2")}
    assert needed["bitsandbytes"] is True and needed["peft"] is True
    assert "bitsandbytes" not in {p for p, *_ in required_packages("seq2seq", "lora", "smollm2")}


@pytest.mark.slow
def test_encoder_handler_refuses_qlora_naming_lora():
    handler = ClassificationHandler()
    rows = [{"record": {"text": "a", "label": "x"}}, {"record": {"text": "b", "label": "y"}}]
    cfg = TrainConfig(task_profile="classification", method="qlora")
    handler.setup(resolve_model_path("auto", "classification"), rows, cfg)
    with pytest.raises(ValueError, match="use method='lora'"):
        handler.build_model(cfg)


@pytest.mark.slow
def test_qlora_base_is_4bit_and_holds_less_than_lora():
    import torch
    from bitsandbytes.nn import Linear4bit

    path = resolve_model_path("auto", "seq2seq")
    handler = Seq2SeqHandler()
    handler.setup(path, [], qlora_config())
    qlora = handler.build_model(qlora_config())
    base_linears = [
        m.base_layer for name, m in qlora.named_modules() if name.endswith(("q_proj", "down_proj"))
    ]
    assert base_linears and all(isinstance(m, Linear4bit) for m in base_linears)
    assert all(m.weight.dtype == torch.uint8 and not m.weight.requires_grad for m in base_linears)
    adapters = [p for n, p in qlora.named_parameters() if p.requires_grad]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)  # adapters stay fp32
    # one forward and backward through the 4-bit layers reaches the adapters
    ids = handler.tokenizer("Name a colour.", return_tensors="pt")["input_ids"]
    qlora(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in adapters)
    q_bytes, q_count = model_bytes(qlora), count_params(qlora)
    del qlora
    lora = handler.build_model(TrainConfig(task_profile="seq2seq", method="lora", lora_r=4))
    l_bytes = model_bytes(lora)
    assert q_count == count_params(lora)  # the same weights and adapters, however they are stored
    # the fp32 embedding (tied with the head) stays full size; the linear layers shrink 8x
    assert q_bytes < 0.5 * l_bytes, (q_bytes, l_bytes)


@pytest.mark.slow
def test_qlora_sft_trains_two_steps_and_saves_only_the_adapter(project, shared_data):
    from safetensors.torch import load_file

    rows = alpaca_rows(shared_data, 6)
    result = train(project, qlora_config(), rows[:4], rows[4:])
    assert result.status == "completed", result.error
    steps = read_trace(Path(result.run_dir) / "trace.jsonl", "train")
    assert len(steps) == 2 and all(math.isfinite(s["loss"]) and s["loss"] > 0 for s in steps)
    plan = json.loads((Path(result.run_dir) / "plan.json").read_text())
    assert plan["config"]["method"] == "qlora"
    adapter = Path(result.run_dir) / "adapter"
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)  # the 4-bit base is not written
    assert not (adapter / "model.safetensors").exists()
    # LoRA's B matrices start at zero: after two steps they must have moved
    moved = [k for k, v in saved.items() if "lora_B" in k and float(v.abs().max()) > 0]
    assert moved


@pytest.mark.slow
def test_qlora_dpo_reference_is_the_4bit_base_with_the_adapter_off(project, shared_data):
    from test_handlers_generative import dpo_rows

    rows = dpo_rows(shared_data, 4)
    config = qlora_config(task_profile="alignment", max_length=96, max_steps=1)
    result = train(project, config, rows[:2], rows[2:])
    assert result.status == "completed", result.error
    [step] = read_trace(Path(result.run_dir) / "trace.jsonl", "train")
    # a fresh adapter adds zero: policy == reference (the same 4-bit base), so the loss is log 2
    assert step["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert result.eval["mode"] == "dpo" and result.eval["reward_margin_mean"] != 0.0
