"""What a training run is asked to do. Plain data: it goes into plan.json unchanged."""

from __future__ import annotations

from typing import Any

from ..contracts.base import Contract, contract
from ..contracts.reasons import TASK_PROFILES
from .packing import STRATEGIES
from .speed import ADAMW_IMPLS

METHODS = ("lora", "qlora", "full")  # qlora = LoRA over a 4-bit NF4 base (bitsandbytes)
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # auto = bf16 where the device has it natively
DEVICES = ("auto", "cpu", "cuda", "mps")


class TrainConfigError(ValueError):
    """A config with one or more problems; the message lists every one of them."""


@contract
class TrainConfig(Contract):
    task_profile: str = "classification"
    base: str = "auto"  # "auto" = the handler's offline default; or a local HF folder
    method: str = "lora"  # lora | qlora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] | str | None = None  # None = the handler's choice
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    epochs: int = 1
    max_steps: int | None = None  # when set, the run length in optimizer steps: overrides epochs (HF Trainer)
    batch_size: int = 16  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_length: int = 128  # tokens per example (longer ones are truncated)
    packing: bool = True
    pack_length: int = 0  # row length when packing; 0 = the batch's longest example
    batching: str = "bucket"  # bucket | random
    bucket_window: int = 0  # bucketing: batches per length-sorted window; 0 = the whole epoch
    grad_clip: float = 1.0
    seed: int = 13
    eval_every: int = 0  # steps; 0 = only at the end (when eval rows are given)
    checkpoint_every: int = 0  # steps; 0 = no periodic checkpoints
    keep_checkpoints: int = 2
    device: str = "auto"
    # autocast dtype on the device; fp32 = no autocast; auto (default): bf16 autocast where the
    # device runs bf16 natively (AMX/AVX512-BF16 CPUs, Ampere+ GPUs), else fp32 (train/speed.py)
    precision: str = "auto"
    compile: bool = False  # torch.compile the model (dynamic shapes; compile time is part of the run)
    adamw: str = "auto"  # AdamW kernel: auto (fused unless FSDP) | fused | foreach | loop
    fast_dropout: bool = True  # CPU dropout masks from 16-bit random words (train/speed.py)
    # trainable embedding tables: sparse grads, AdamW over the rows used so far (exact; one process)
    sparse_embedding_grads: bool = True
    fused_lora: bool = True  # plain LoRA layers: forward and backward in one autograd step (fused_lora.py)
    fused_lm_loss: bool = True  # causal LMs: output layer + cross-entropy in chunks, no full logits
    malloc_reuse: bool = True  # glibc keeps freed blocks for the next step (no page faults per step)
    threads: int = 0  # torch CPU threads; 0 = all cores
    max_seconds: float | None = None  # wallclock budget -> training_timeout
    max_rss_mb: int | None = None  # RSS watchdog -> training_oom; None = 90% of available RAM
    eval_max_rows: int = 512
    # knowledge distillation (SFT): a teacher capture id (``brewslm train capture-teacher``)
    distill_from: str | None = None
    distill_alpha: float = 0.5  # weight of the teacher term; 1 - alpha stays on the labels
    distill_temperature: float = 1.0
    fsdp: bool = False  # shard weights/grads/optimizer state across ranks (multi-process runs)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of a run: ``max_steps`` when set (it overrides ``epochs``, as in the HF
        Trainer: the data is cycled for as many epochs as it takes), else ``epochs`` full passes."""
        if self.max_steps:
            return self.max_steps
        return max(steps_per_epoch, 1) * self.epochs

    def steps_note(self, steps_per_epoch: int) -> str | None:
        """Says out loud how ``max_steps`` changed the run length against ``epochs``; None without it."""
        if not self.max_steps:
            return None
        per = max(steps_per_epoch, 1)
        return (
            f"max_steps={self.max_steps} overrides epochs={self.epochs}: {self.max_steps} steps "
            f"= {self.max_steps / per:.2f} passes over the data ({per} steps per epoch)"
        )

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.task_profile not in TASK_PROFILES:  # one handler per profile (tests check the two agree)
            out.append(f"task_profile {self.task_profile!r} has no handler ({list(TASK_PROFILES)})")
        if self.method not in METHODS:
            out.append(
                f"method must be one of {METHODS}, not {self.method!r} (lora: adapters on a frozen fp32 "
                "base; qlora: the same over a 4-bit base, causal-LM tasks only; full: every weight)"
            )
        if self.precision not in PRECISIONS:
            out.append(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.adamw not in ADAMW_IMPLS:
            out.append(f"adamw must be one of {ADAMW_IMPLS}, not {self.adamw!r}")
        if self.device not in DEVICES:
            out.append(f"device must be one of {DEVICES}, not {self.device!r}")
        if self.batching not in STRATEGIES:
            out.append(f"batching must be one of {STRATEGIES}, not {self.batching!r}")
        if self.bucket_window < 0:
            out.append("bucket_window must be 0 (the whole epoch) or a number of batches")
        for name in ("batch_size", "grad_accum", "max_length", "epochs", "keep_checkpoints"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            out.append("max_steps must be at least 1 (or None)")
        if self.lr <= 0:
            out.append("lr must be positive")
        if self.method in ("lora", "qlora") and self.lora_r < 1:
            out.append("lora_r must be at least 1")
        if self.distill_from and self.task_profile != "seq2seq":
            out.append(
                f"distill_from is an SFT recipe: it applies to task_profile 'seq2seq', "
                f"not {self.task_profile!r}"
            )
        if not 0.0 <= self.distill_alpha <= 1.0:
            out.append("distill_alpha must be between 0 and 1")
        if self.distill_temperature <= 0:
            out.append("distill_temperature must be positive")
        return out

    def check(self) -> TrainConfig:
        found = self.problems()
        if found:
            raise TrainConfigError("train config has problems:\n- " + "\n- ".join(found))
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f"unknown train config keys {unknown}; known: {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("lora_targets"), list):
            data["lora_targets"] = tuple(data["lora_targets"])
        return cls(**data)
