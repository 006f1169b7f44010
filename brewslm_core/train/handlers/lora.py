"""LoRA via peft, QLoRA (LoRA over a 4-bit NF4 base), or full fine-tuning: the one switch every
handler shares, and the one causal-LM loader the decoder-side handlers build on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..device import pick_device

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

BNB_INSTALL = "pip install 'bitsandbytes>=0.50'"


def causal_tokenizer(model_path: str | Path) -> Any:
    """The model's tokenizer, with pad = eos when it names no pad token (decoders often don't)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def nf4_config(device: torch.device) -> Any:
    """transformers' 4-bit NF4 settings; compute in bf16 on a CUDA device that has it, else fp32."""
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"method='qlora' quantises the base model with bitsandbytes, which is not installed: "
            f"{BNB_INSTALL} (or use method='lora')"
        ) from exc
    from transformers import BitsAndBytesConfig

    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )


def load_causal_lm(model_path: str | Path, config: TrainConfig, targets: Any) -> torch.nn.Module:
    """A decoder-only model ready to train: sdpa attention, fp32 weights, no KV cache, seeded
    before it is built, then ``adapt``-ed. With method "qlora" the base's linear layers are
    loaded as 4-bit NF4 (frozen) and the LoRA adapters on top stay fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(config.seed)
    extra: dict[str, Any] = {}
    if config.method == "qlora":
        device = pick_device(config.device)
        # transformers quantises while it loads; the weights land on the run's device directly
        extra = {"quantization_config": nf4_config(device), "device_map": {"": device}}
    model = AutoModelForCausalLM.from_pretrained(
        model_path, attn_implementation="sdpa", dtype=torch.float32, **extra
    )
    model.config.use_cache = False
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # freezes the base and upcasts any half-precision leftovers (norms) to fp32; no
        # gradient checkpointing: the engine does not ask for it and it changes the step
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return adapt(model, config, targets)


def is_4bit(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False))


def adapt(model: torch.nn.Module, config: TrainConfig, default_targets: Any) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (methods "lora", "qlora") or leave every weight
    trainable ("full")."""
    if config.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if config.method == "qlora" and not is_4bit(model):
        # only the causal-LM loader quantises; anything else would silently train plain LoRA
        raise ValueError(
            f"method='qlora' is for the causal-LM tasks (a 4-bit decoder base); this "
            f"{type(model).__name__} is not loaded in 4 bits: use method='lora'"
        )
    from peft import LoraConfig, get_peft_model

    targets = config.lora_targets if config.lora_targets is not None else default_targets
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(targets) if isinstance(targets, tuple) else targets,
        bias="none",
    )
    return get_peft_model(model, lora)


def _weights(p: torch.nn.Parameter) -> int:
    """Weights a parameter stands for: a 4-bit one packs two per byte, its shape is the real one."""
    state = getattr(p, "quant_state", None)
    return int(math.prod(state.shape)) if state is not None else p.numel()


def count_params(model: torch.nn.Module) -> dict[str, int]:
    total = sum(_weights(p) for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": train}
