"""A LoRA linear layer in one autograd step: no scaled copy, no extra sum, no dX detour.

peft computes ``y = base(x) + B(A(x)) * s`` as separate ops: the low-rank product is written
out at full width [tokens, out], multiplied by ``s`` into another tensor, then added to the
base output; backward mirrors that, plus a full-width add of the two input gradients. On CPU,
where a small model's step is bound by memory passes, that costs a third on top of the base
matmul (measured on a 576 x 576 layer, 650 tokens). Here the low-rank term is accumulated into
the base output by one in-place ``addmm`` (``s`` folded into the r x out factor), and backward
accumulates the adapter's share of ``dX`` into the base ``dX`` the same way:

    forward   xa = x A^T                      y = x W^T + b;  y += xa (sB)^T
    backward  g_B = s g^T xa   gb = g (sB)    g_A = gb^T x    dX = g W;  dX += gb A

The same products as peft's (the weights and their gradients agree to float rounding), and the
frozen base weight never gets a gradient. Used for plain LoRA only: one active adapter, no
dropout, no DoRA or other variant, an ``nn.Linear`` base (QLoRA's 4-bit base keeps peft's
forward); anything else calls peft's own forward.

Under autocast (bf16 on a CPU with AMX/AVX512-BF16 or a GPU) it runs the same step in the
autocast dtype, rounding what autocast would round (the input, the adapters, the base weight;
the adapters' gradients come back in fp32 as autocast's casts give them). The frozen base
weight is cast once and kept beside the layer (not in its state dict) instead of on every
forward, and the whole layer is one autograd node instead of peft's ~20 casts and products
(measured: casts were 15% of a SmolLM2 LoRA step in bf16).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _function() -> type:
    import torch

    class LoraLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, bias: Any, a: Any, b: Any, scale: float) -> Any:
            flat = x.reshape(-1, x.shape[-1])
            sb = b * scale  # [out, r]: s folded into the small factor
            xa = flat @ a.t()  # [tokens, r]
            y = torch.addmm(bias, flat, weight.t()) if bias is not None else flat @ weight.t()
            y.addmm_(xa, sb.t())
            ctx.save_for_backward(flat, weight, a, sb, xa)
            ctx.scale, ctx.shape = scale, x.shape
            return y.view(*x.shape[:-1], weight.shape[0])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> tuple[Any, ...]:
            flat, weight, a, sb, xa = ctx.saved_tensors
            g = grad.reshape(-1, grad.shape[-1])
            gb = g @ sb  # [tokens, r]
            grad_a = gb.t() @ flat
            grad_b = (g.t() @ xa).mul_(ctx.scale)
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = (g @ weight).addmm_(gb, a).view(ctx.shape)
            grad_w = g.t() @ flat if ctx.needs_input_grad[1] else None
            grad_bias = g.sum(0) if ctx.needs_input_grad[2] else None
            return grad_x, grad_w, grad_bias, grad_a, grad_b, None

    return LoraLinear


def lora_linear(x: Any, weight: Any, bias: Any, a: Any, b: Any, scale: float) -> Any:
    """``x W^T + bias + s (x A^T) B^T`` with the fused forward and backward above."""
    return _function().apply(x, weight, bias, a, b, scale)


@functools.cache
def _fused_class(base: type) -> type:
    import torch

    class FusedLoraLinear(base):  # type: ignore[misc, valid-type]
        """peft's LoRA ``Linear`` whose plain-LoRA forward is :func:`lora_linear`."""

        def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            active = [n for n in self.active_adapters if n in self.lora_A]
            amp = torch.is_autocast_enabled(x.device.type)
            if (args or kwargs or self.disable_adapters or self.merged or len(active) != 1
                    or active[0] in self.lora_variant
                    or not isinstance(self.lora_dropout[active[0]], torch.nn.Identity)
                    or (not amp and x.dtype != self.lora_A[active[0]].weight.dtype)):
                return super().forward(x, *args, **kwargs)
            name = active[0]
            base_layer = self.get_base_layer()
            a, b = self.lora_A[name].weight, self.lora_B[name].weight
            if not amp:
                return lora_linear(x, base_layer.weight, base_layer.bias, a, b, self.scaling[name])
            dtype = torch.get_autocast_dtype(x.device.type)
            bias = None if base_layer.bias is None else base_layer.bias.to(dtype)
            with torch.autocast(x.device.type, enabled=False):
                return lora_linear(x.to(dtype), _cast_weight(base_layer, dtype), bias,
                                   a.to(dtype), b.to(dtype), self.scaling[name])

    return FusedLoraLinear


def _cast_weight(layer: Any, dtype: Any) -> Any:
    """``layer.weight`` in ``dtype``: a frozen weight is cast once and kept on the layer (again
    when it changes in place); a trainable one is cast on each call, as autocast does."""
    weight = layer.weight
    if weight.requires_grad or weight.dtype == dtype:
        return weight.to(dtype)
    kept = layer.__dict__.get("_brewslm_cast")
    key = (dtype, weight._version, weight.data_ptr())
    if kept is None or kept[0] != key:
        kept = layer.__dict__["_brewslm_cast"] = (key, weight.detach().to(dtype))
    return kept[1]


def use_fused_lora(model: Any) -> int:
    """Give every plain-LoRA ``nn.Linear`` layer of ``model`` the fused forward; how many."""
    import torch

    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:
        return 0
    changed = 0
    for module in model.modules():
        if type(module) is Linear and type(module.get_base_layer()) is torch.nn.Linear \
                and not getattr(module, "fan_in_fan_out", False):
            module.__class__ = _fused_class(Linear)  # same attributes and state dict
            changed += 1
    return changed
