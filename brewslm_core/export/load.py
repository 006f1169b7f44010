"""Rebuild a run's trained model for export: the source side of every smoke check.

Causal LMs come through ``brewslm_core.predict`` (``load_run`` rebuilds the run exactly as
training built it; ``merged_causal_lm`` merges its LoRA), the same path eval and deploy use.
Encoders are compared on their hidden states (the task head travels as a file), so they are
rebuilt here as the plain transformers encoder + the run's peft adapter.
"""

from __future__ import annotations

from typing import Any

from .source import RunSource


def causal_lm(source: RunSource, *, merged: bool) -> tuple[Any, Any]:
    """(model, tokenizer): the run's causal LM in eval mode on CPU, LoRA merged or kept as peft."""
    from ..predict import load_run, merged_causal_lm

    loaded = load_run(source.project, source.run_id)
    if merged:
        return merged_causal_lm(loaded)
    return loaded.model.eval(), loaded.tokenizer


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
