"""Rebuild a run's trained model from its folder for export: the source side of every smoke test.

``brewslm_core.predict.load_run`` / ``merged_causal_lm`` are used when that package is there;
the plain transformers + peft path below is the same recipe (base folder + the run's adapter).
"""

from __future__ import annotations

from typing import Any

from .source import RunSource


def causal_lm(source: RunSource, *, merged: bool) -> tuple[Any, Any]:
    """(model, tokenizer): the run's causal LM in fp32 eval mode, LoRA merged or kept as peft."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.weights_dir)
    if not source.is_lora:
        model = AutoModelForCausalLM.from_pretrained(source.weights_dir, dtype=torch.float32)
        return model.eval(), tokenizer
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(source.base_model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, source.weights_dir)
    if merged:
        model = model.merge_and_unload()
    return model.eval(), tokenizer


def encoder(source: RunSource, *, merged: bool) -> tuple[Any, Any]:
    """(encoder, tokenizer): the run's transformer encoder (the task head is a separate file)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.weights_dir)
    if not source.is_lora:
        return AutoModel.from_pretrained(source.weights_dir, dtype=torch.float32).eval(), tokenizer
    from peft import PeftModel

    base = AutoModel.from_pretrained(source.base_model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, source.weights_dir)
    if merged:
        model = model.merge_and_unload()
    return model.eval(), tokenizer
