"""The language-model loss without the full logits: the output layer and cross-entropy in one.

``F.cross_entropy(hidden @ weight.T, target)`` materialises [tokens, vocab] logits (49,152 columns
for SmolLM2: 190 KB per token in fp32), then a log-softmax of the same size, and in backward a
zero-filled tensor of that size again and the log-softmax's gradient. On CPU those passes, and the
page faults of fresh allocations that large, cost about as much as the output matmul itself.

Here the tokens go through in equal chunks of at most ~96 MB of logits: per chunk, the logits,
their log-sum-exp, the loss, and at once the gradient (softmax minus one-hot, computed in place
in the chunk's buffer) times the weight. Backward only scales the stored gradients by the
incoming one. Same arithmetic in the same dtypes as the plain path (bf16 matmuls under autocast,
fp32 softmax).

The fp32 logits go into one buffer per device and thread that the process keeps (grown when a
chunk needs more): the two vocab-wide matmuls run at ~110/130 GFLOP/s on 128-row chunks and
~120/165 on 512-row chunks here, but a fresh allocation that large would be page-faulted in on
every chunk.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CHUNK_BYTES = 96 * 2**20  # fp32 logits per chunk at most (SmolLM2: 512 rows)
_KEPT = threading.local()  # per thread (runs may train in threads): device -> fp32 logits buffer


def chunk_rows(vocab: int) -> int:
    return max(16, CHUNK_BYTES // (4 * vocab))


def chunks(tokens: int, vocab: int) -> int:
    """Rows per chunk: equal chunks of at most ``chunk_rows`` (a short last chunk runs slowest)."""
    most = chunk_rows(vocab)
    return -(-tokens // -(-tokens // most)) if tokens else most


def _logits_buffer(rows: int, vocab: int, device: Any) -> Any:
    import torch

    kept = _KEPT.__dict__.setdefault("buffers", {})
    buf = kept.get(device)
    if buf is None or buf.numel() < rows * vocab:
        buf = kept[device] = torch.empty(rows * vocab, dtype=torch.float32, device=device)
    return buf[: rows * vocab].view(rows, vocab)


def fits(layer: Any) -> bool:
    """The output layers this covers: a plain ``nn.Linear`` without bias (a LoRA-wrapped or
    biased head takes the plain path)."""
    import torch

    return type(layer) is torch.nn.Linear and layer.bias is None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``hidden @ weight.T`` [tokens, vocab] against ``target`` [tokens]
    (every target a real class: select the supervised tokens first)."""
    import torch

    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    if not torch.is_grad_enabled() or not (hidden.requires_grad or weight.requires_grad):
        return _loss_only(hidden, weight, target, dtype)
    if weight.requires_grad and dtype != torch.float32:
        # a trainable head's gradient would accumulate over chunks in bf16: take the plain path
        logits = hidden @ weight.T
        return torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")
    return _function().apply(hidden, weight, target, dtype)


def _loss_only(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, dtype: Any) -> torch.Tensor:
    """The same sum, chunk by chunk, when no gradient is wanted (evaluation)."""
    import torch

    loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
    w = weight.to(dtype)
    step = chunk_rows(weight.shape[0])
    for start in range(0, hidden.shape[0], step):
        logits = (hidden[start : start + step].to(dtype) @ w.T).float()
        loss += torch.nn.functional.cross_entropy(logits, target[start : start + step], reduction="sum")
    return loss


@functools.cache
def _function() -> Any:  # torch is imported lazily; the Function is built once
    import torch

    class LinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, target: Any, dtype: Any) -> Any:
            with torch.autocast(hidden.device.type, enabled=False):
                w = weight.to(dtype)
                grad_h = torch.empty(hidden.shape, dtype=dtype, device=hidden.device)
                grad_w = torch.zeros_like(weight) if weight.requires_grad else None
                loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
                step = chunks(hidden.shape[0], weight.shape[0])
                buf = _logits_buffer(step, weight.shape[0], hidden.device)
                for start in range(0, hidden.shape[0], step):
                    h = hidden[start : start + step].to(dtype)
                    t = target[start : start + step]
                    if dtype == torch.float32:  # into the kept buffer: no fresh pages per chunk
                        logits = torch.mm(h, w.T, out=buf[: len(h)])
                    else:
                        logits = (h @ w.T).float()
                    picked = logits.gather(1, t.unsqueeze(1)).squeeze(1)
                    top = logits.amax(dim=1, keepdim=True)
                    # d loss / d logits = softmax - one-hot, built in the logits' own buffer
                    grad = logits.sub_(top).exp_()
                    total = grad.sum(dim=1, keepdim=True)
                    loss += (top.squeeze(1) + total.log().squeeze(1) - picked).sum()
                    grad.div_(total)
                    grad[torch.arange(len(t), device=t.device), t] -= 1.0
                    grad = grad.to(dtype)
                    grad_h[start : start + step] = grad @ w
                    if grad_w is not None:
                        grad_w.addmm_(grad.T, h)
            ctx.save_for_backward(grad_h, grad_w)
            ctx.hidden_dtype = hidden.dtype
            return loss

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            grad_h, grad_w = ctx.saved_tensors
            dh = (grad_h * grad_out).to(ctx.hidden_dtype)
            dw = grad_w * grad_out if grad_w is not None else None
            return dh, dw, None, None

    return LinearCrossEntropy
