"""Preflight: dependency, model, capability, memory-fit and gate-policy checks + the TrainPlan.

    from brewslm_core.preflight import preflight
    report = preflight(project)                 # strict or fail-open per [gates] policy
    report.passed, report.blockers, report.plan  # plan also in runs/<run_id>/train_plan.json

torch/transformers load lazily: importing this package is cheap.
"""

from .core import (
    ACCELERATE_FILE,
    PLAN_FILE,
    SUITABLE_KINDS,
    PreflightError,
    load_plan,
    preflight,
)
from .hardware import detect_hardware
from .memory import ModelFacts, budget_for, estimate_memory, model_facts, suggest_fit

__all__ = [
    "ACCELERATE_FILE",
    "PLAN_FILE",
    "SUITABLE_KINDS",
    "ModelFacts",
    "PreflightError",
    "budget_for",
    "detect_hardware",
    "estimate_memory",
    "load_plan",
    "model_facts",
    "preflight",
    "suggest_fit",
]
