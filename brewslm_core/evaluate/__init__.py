"""Evaluate stage: score a trained run against an eval pack's gates and save an EvalReport.

    report = evaluate(project, "exp-1a2b3c4d", pack="default")   # evals/default.yaml
    report.promotable, report.gates, report.failure_clusters
    latest_report(project, "exp-1a2b3c4d")                        # what deploy reads
    init_pack(project)                                            # a starter pack from the manifest

Metrics come from the task handler's ``score()`` (scikit-learn, sacrebleu, rouge-score, seqeval,
jiwer); torch/transformers load lazily.
"""

from ..contracts.evaluate import EvalReport, FailureCluster, Gate, GateResult
from .dataset import EvalDatasetMissing
from .gates import check_gates, metric_value
from .judge import JudgeUnavailable
from .metrics import METRICS
from .packs import (
    EvalPack,
    EvalPackError,
    check_pack,
    find_pack,
    init_pack,
    list_packs,
    load_pack,
    starter_pack,
)
from .run import EvalRuntimeError, evaluate, latest_report, list_reports, load_report

__all__ = [
    "EvalDatasetMissing",
    "EvalPack",
    "EvalPackError",
    "EvalReport",
    "EvalRuntimeError",
    "FailureCluster",
    "Gate",
    "GateResult",
    "JudgeUnavailable",
    "METRICS",
    "check_gates",
    "check_pack",
    "evaluate",
    "find_pack",
    "init_pack",
    "latest_report",
    "list_packs",
    "list_reports",
    "load_pack",
    "load_report",
    "metric_value",
    "starter_pack",
]
