"""LoRA via peft, or full fine-tuning: the one switch every handler shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig


def adapt(model: torch.nn.Module, config: TrainConfig, default_targets: Any) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (method "lora") or leave every weight trainable."""
    if config.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
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


def count_params(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": train}
