"""Speed levers of a training run, each one a config switch (measured by benchmarks/bench_train.py).

- ``precision``: ``auto`` resolves to bf16 autocast where the device runs bf16 natively (a CUDA GPU
  with bf16, or a CPU whose oneDNN reports AVX512-BF16/AMX), else fp32.
- ``adamw``: the AdamW implementation: ``auto`` (the sharding's choice: fused when the weights are
  replicated, foreach under FSDP), ``fused``, ``foreach`` or ``loop`` (the per-tensor loop).
- ``compile``: ``torch.compile`` of the model in place (``nn.Module.compile``: state-dict keys
  stay the same, so checkpoints and resume are unchanged) with dynamic shapes, so packed rows of
  varying length do not recompile every step.
"""

from __future__ import annotations

from typing import Any

ADAMW_IMPLS = ("auto", "fused", "foreach", "loop")


def native_bf16(device: Any) -> bool:
    """True when ``device`` runs bf16 matmuls natively (not emulated, which is slower than fp32)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return False


def resolve_precision(precision: str, device: Any) -> str:
    """The precision a run uses: ``auto`` becomes bf16 on native-bf16 hardware, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def adamw_options(impl: str, auto: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``torch.optim.AdamW`` that pick the implementation; ``auto`` = the
    sharding's own options (passed in)."""
    return {
        "auto": auto,
        "fused": {"fused": True, "foreach": False},
        "foreach": {"fused": False, "foreach": True},
        "loop": {"fused": False, "foreach": False},
    }[impl]


def compile_model(model: Any) -> Any:
    """Compile ``model`` in place (dynamic shapes) and return it."""
    model.compile(dynamic=True)
    return model
