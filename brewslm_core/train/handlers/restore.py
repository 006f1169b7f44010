"""Rebuilding a trained model from what ``save()`` wrote, for every handler.

A run folder's ``adapter/`` holds either a peft adapter (``adapter_model.safetensors``, methods
lora and qlora) or full weights (``model.safetensors``, method full), plus any head files. The
model is rebuilt the way training built it (``build_model`` with the run's config, so LoRA
ranks, targets and a 4-bit base come back the same) and the saved tensors are loaded into it:
- lora/qlora: the base from its folder, then the adapter tensors into the fresh adapter;
- full: the weights folder itself is the base ``build_model`` loads.
Every expected tensor must be found: a partial load is refused, never guessed around.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

ADAPTER_FILE = "adapter_model.safetensors"


class RestoreError(RuntimeError):
    """The run folder does not hold what its plan says was saved."""


def is_adapter(weights_dir: Path) -> bool:
    return (weights_dir / ADAPTER_FILE).is_file()


def model_source(config: TrainConfig, base_path: Path, weights_dir: Path) -> Path:
    """Where ``build_model`` should load pretrained weights from: the base for an adapter run,
    the weights folder for a full fine-tune."""
    if config.method == "full":
        if not any(weights_dir.glob("*.safetensors")) or not (weights_dir / "config.json").is_file():
            raise RestoreError(
                f"{weights_dir} has no full model weights (config.json + *.safetensors) although the "
                "run used method='full'; the run did not finish saving: train it again"
            )
        return weights_dir
    if not is_adapter(weights_dir):
        raise RestoreError(
            f"{weights_dir} has no {ADAPTER_FILE} although the run used method={config.method!r}; "
            "the run did not finish saving: train it again"
        )
    return base_path


def load_adapter(model: torch.nn.Module, weights_dir: Path) -> None:
    """Saved LoRA tensors into the fresh (identically configured) adapter of ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    tensors = load_file(str(weights_dir / ADAPTER_FILE))
    result = set_peft_model_state_dict(model, tensors)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        raise RestoreError(
            f"the adapter in {weights_dir} does not fit the rebuilt model ({len(missing)} LoRA "
            f"tensors missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. "
            f"{unexpected[:2]}): was the run trained with other lora settings?"
        )


def load_tensors(module: torch.nn.Module, path: Path, prefix: str = "") -> None:
    """A head (or projector) state dict saved with ``save_file``, keys under ``prefix``."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise RestoreError(f"{path} is missing: the run did not finish saving; train it again")
    tensors = load_file(str(path))
    if prefix:
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    module.load_state_dict(tensors, strict=True)


def rebuild(handler: Any, config: TrainConfig, base_path: Path, weights_dir: Path,
            adapter_of: Any = None) -> torch.nn.Module:
    """``handler.build_model`` from the right source, with the adapter loaded when there is one.

    ``adapter_of(model)`` picks the peft-wrapped part (e.g. ``model.encoder``); default the model.
    """
    source = model_source(config, base_path, weights_dir)
    keep = handler.model_path
    handler.model_path = source
    try:
        model = handler.build_model(config)
    finally:
        handler.model_path = keep
    if config.method != "full":
        load_adapter(adapter_of(model) if adapter_of else model, weights_dir)
    return model


def merged(module: torch.nn.Module) -> torch.nn.Module:
    """A LoRA-wrapped encoder with its adapter merged into the weights (plain transformers
    module): inference then runs no extra adapter matmuls. Full fine-tunes come back as they are."""
    merge = getattr(module, "merge_and_unload", None)
    return merge() if callable(merge) and not getattr(module, "is_loaded_in_4bit", False) else module


def eval_ready(model: torch.nn.Module) -> torch.nn.Module:
    """Inference mode: no grads, eval (dropout off), KV cache on for generation."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "use_cache"):
            cfg.use_cache = True
    return model
