"""Attention for CPU training with attention dropout: the fast dropout mask on its probabilities.

PyTorch's fused CPU attention kernel takes no dropout, so a training forward of an encoder with
attention dropout (BERT-style: p = 0.1) runs SDPA's math path, and its per-element Bernoulli
draw over the [rows, heads, length, length] probabilities was its slowest part (~2% of a
MiniLM step). This runs the same math (scaled scores, mask, softmax, dropout, weighted values)
with the mask of ``speed.keep_mask``. Everywhere else (eval, no dropout, other devices, a causal
or grouped-query or position-bias attention) it hands over to transformers' own ``sdpa``.

Under CPU autocast (bf16) every sdpa attention of the model is routed here, and the hand-over
runs in fp32: the CPU's fused attention kernel is slower in bf16 than in fp32 on rows of a few
hundred tokens (forward and backward over 4 rows of 145 tokens: 14 ms against 6 ms), and the
fp32 result is the exact one.

It is a named attention implementation of transformers (``NAME``), set on the model's config for
the run; the config's attention name is not saved with the weights.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from .speed import fast_dropout

NAME = "brewslm_sdpa"


def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
              dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-function signature: ([rows, length, heads, dim] output, None)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (
        not 0.0 < dropout < 1.0 or query.device.type != "cpu" or kwargs.get("position_bias") is not None
        or getattr(module, "num_key_value_groups", 1) > 1 or kwargs.get("is_causal")
        or (attention_mask is None and getattr(module, "is_causal", False))
    )
    if plain:
        context = contextlib.nullcontext()
        if query.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # in fp32: the CPU's fused kernel runs slower in bf16 on rows of a few hundred tokens
            # (forward + backward, 4 rows of 145: 14 ms in bf16, 6 ms in fp32), and fp32 is exact
            context = torch.autocast("cpu", enabled=False)
            query, key, value = query.float(), key.float(), value.float()
            if attention_mask is not None and attention_mask.is_floating_point():
                attention_mask = attention_mask.float()
        with context:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scale)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True = may attend
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the masks sdpa gets


def use_fast_attention(model: Any, device: Any, autocast: bool = False) -> int:
    """Route the sdpa attention of ``model``'s transformers configs that have attention dropout
    (all of them when the run autocasts: ``autocast``) through :func:`attention` on CPU; how
    many configs it changed."""
    if device.type != "cpu":
        return 0
    _register()
    changed = 0
    for module in model.modules():  # a shared config, once routed, is no longer "sdpa"
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) != "sdpa":
            continue
        rate = getattr(config, "attention_probs_dropout_prob", 0) or getattr(config, "attention_dropout", 0)
        if not rate and not autocast:
            continue  # no attention dropout: sdpa's fused kernel already serves it
        config._attn_implementation = NAME
        changed += 1
    return changed
