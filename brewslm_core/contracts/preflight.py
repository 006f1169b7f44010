"""Preflight contracts: what the checks found, what the machine is, and the plan a run follows.

``PreflightReport`` is the answer of ``brewslm_core.preflight.preflight``: ``passed`` plus the
blockers and warnings (``PreflightItem``), one ``CheckResult`` row per check for tables, the
detected ``HardwareInfo``, the ``MemoryEstimate`` and the ``TrainPlan`` written to
``runs/<run_id>/train_plan.json``.
"""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

CHECK_STATUSES: tuple[str, ...] = ("pass", "warn", "block", "skip")
PREFLIGHT_MODES: tuple[str, ...] = ("strict", "fail-open")


@contract
class PreflightItem(Contract):
    """One blocker or warning: which check, what is wrong, and what to do about it.

    ``suggestion`` is a concrete change when one exists (e.g. TrainConfig fields that make the
    memory estimate fit); ``details`` holds the numbers behind the message.
    """

    check: str  # dependency | model | memory | capability | gates | manifest | probe
    code: str  # stable short name of the finding, e.g. "memory_does_not_fit"
    message: str
    fix: str
    suggestion: dict[str, Any] | None = None
    details: dict[str, Any] | None = None


@contract
class CheckResult(Contract):
    """One row of the preflight table."""

    name: str
    status: str  # pass | warn | block | skip
    detail: str


@contract
class HardwareInfo(Contract):
    cpu_cores: int
    ram_total_mb: float
    ram_available_mb: float
    cuda_devices: tuple[dict[str, Any], ...]  # {index, name, total_mb, free_mb, bf16}
    bf16: dict[str, bool]  # device type -> usable natively ("cpu", "cuda")
    fp16: dict[str, bool]
    mps: bool
    platform: str
    torch_version: str | None


@contract
class MemoryEstimate(Contract):
    """Peak memory of one training process, in MB, split by what holds it.

    ``device`` is where the budget applies ("cpu" = RAM, "cuda" = one GPU's memory).
    ``basis`` records the inputs (params, tokens per micro-batch, architecture numbers).
    """

    device: str
    weights_mb: float
    gradients_mb: float
    optimizer_mb: float
    activations_mb: float
    logits_mb: float
    overhead_mb: float
    total_mb: float
    budget_mb: float
    fits: bool
    basis: dict[str, Any]


@contract
class TrainPlan(Contract):
    """What a run will do, fixed before it starts; written to runs/<run_id>/train_plan.json."""

    run_id: str
    created_at: str
    task_profile: str
    model: dict[str, Any]  # the ModelRef (name, family, path, kind, source)
    handler: str
    method: str
    lora: dict[str, Any] | None  # r, alpha, dropout, targets; None for full fine-tuning
    batch_size: int
    grad_accum: int
    effective_batch: int
    epochs: int
    max_steps: int | None
    total_steps: int
    train_rows: int
    lr: float
    lr_schedule: dict[str, Any]  # {"kind": "linear", "warmup_steps": …, "peak_lr": …}
    checkpoint_every: int
    precision: str
    device: str
    memory: dict[str, Any]  # the MemoryEstimate
    probe: dict[str, Any]  # run_id, status, seconds_per_step (measured) …
    estimated_seconds: float | None
    accelerate: dict[str, Any]  # layout, config_yaml, config_path, launch_command
    config: dict[str, Any]  # the full TrainConfig the run uses


@contract
class PreflightReport(Contract):
    passed: bool
    mode: str  # strict | fail-open
    run_id: str
    blockers: tuple[PreflightItem, ...]
    warnings: tuple[PreflightItem, ...]
    checks: tuple[CheckResult, ...]
    hardware: HardwareInfo
    estimate: MemoryEstimate | None
    plan: TrainPlan | None
    plan_path: str | None
