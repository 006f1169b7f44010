"""Speed levers of a training run, each one a config switch (measured by benchmarks/bench_train.py).

- ``precision``: ``auto`` (the default) resolves to bf16 autocast where the device runs bf16
  natively (a CUDA GPU with bf16, or a CPU whose oneDNN reports AVX512-BF16/AMX), else fp32. On
  an AMX CPU, bf16 ran MiniLM full fine-tuning 1.46-1.52x (whole epochs) and SmolLM2 LoRA SFT
  1.54x (30 interleaved steps) faster than fp32 at the same eval loss (benchmarks/bench_train.py);
  under CPU autocast the fused LoRA linear runs in bf16 (fused_lora.py), attention in fp32
  (attention.py).
- ``adamw``: the AdamW implementation: ``auto`` (the sharding's choice: fused when the weights are
  replicated, foreach under FSDP), ``fused``, ``foreach`` or ``loop`` (the per-tensor loop).
- ``compile``: ``torch.compile`` of the model in place (``nn.Module.compile``: state-dict keys
  stay the same, so checkpoints and resume are unchanged) with dynamic shapes, so packed rows of
  varying length do not recompile every step.
- ``fast_dropout`` (CPU): dropout masks from 16-bit random words, four per 64-bit draw of the
  same seeded generator, instead of one Bernoulli draw per element; the keep probability is
  ``1 - p`` to within 2**-16. On CPU a ``nn.Dropout`` costs ~75 elementwise multiplies, so
  the hidden dropouts were ~8% of a MiniLM step. CUDA keeps the native kernel (already fast).
- ``malloc_reuse`` (Linux, glibc): blocks up to 32 MB come from the heap and the heap is never
  trimmed, so a step's freed activations serve the next step. glibc's defaults hand large
  freed blocks back to the kernel, and the next step faults them in again page by page (an
  elementwise op on a fresh 6 MB tensor ran ~6x slower than on a warm one); the memory
  allocators tuned for PyTorch training (jemalloc, tcmalloc) keep it the same way. Process-wide:
  the process keeps the memory it peaked at.
- ``fused_lm_loss``: see ``handlers/lm_loss.py`` (causal-LM output layer and loss in chunks).
- ``sparse_embedding_grads``: trainable embedding tables (not tied to an output layer) build
  sparse gradients and AdamW steps only the rows used so far (exact; see embedding_rows.py).
"""

from __future__ import annotations

import functools
import math
from typing import Any

ADAMW_IMPLS = ("auto", "fused", "foreach", "loop")
KEEP_BITS = 16  # resolution of a fast-dropout keep mask


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


# ---- allocator ----------------------------------------------------------------------------
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


@functools.cache
def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap for reuse (see the module text); False where the C
    library is not glibc or refuses. Process-wide, so done once per process (``libc_ver`` reads
    the interpreter's binary)."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    )


# ---- fast dropout -------------------------------------------------------------------------
def keep_mask(shape: Any, p: float, like: Any) -> Any:
    """``(1 - p)``-Bernoulli keep mask scaled by ``1 / (1 - p)``, in ``like``'s dtype, from
    16-bit words of the default generator (four per 64-bit draw)."""
    import torch

    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device)
    words.random_(-(2**63), None)  # every bit random (the default range leaves the top bit 0)
    bits = words.view(torch.int16)[:n].view(shape)
    threshold = round(p * 2**KEEP_BITS) - 2 ** (KEEP_BITS - 1)  # P(bits < threshold) = p
    return (bits >= threshold).to(like.dtype).mul_(1.0 / (1.0 - p))


def fast_dropout(x: Any, p: float) -> Any:
    """Dropout of ``x`` (training) with the mask from :func:`keep_mask`; ``0 < p < 1``. A plain
    multiply: autograd keeps only the mask for backward (the mask needs no grad), and skips the
    Python round trip of a custom autograd Function (~40 us a call, 19 calls a MiniLM step)."""
    return x * keep_mask(x.shape, p, x)


@functools.cache
def _fast_dropout_class() -> type:
    import torch

    class FastDropout(torch.nn.Dropout):
        """``nn.Dropout`` with its mask from :func:`keep_mask` (same p, same train/eval rule)."""

        def forward(self, x: Any) -> Any:
            if not self.training or self.p == 0.0:
                return x
            if self.p == 1.0:
                return torch.zeros_like(x)
            return fast_dropout(x, self.p)

    return FastDropout


def use_fast_dropout(model: Any, device: Any) -> int:
    """Give every ``nn.Dropout`` of ``model`` the fast mask on CPU; how many it changed."""
    import torch

    if device.type != "cpu":
        return 0
    fast = _fast_dropout_class()
    changed = 0
    for module in model.modules():
        if type(module) is torch.nn.Dropout and module.p > 0:
            module.__class__ = fast  # same attributes and state dict, another forward
            changed += 1
    return changed
