"""Evaluate contracts: an eval pack's gates, their results, failure clusters and the EvalReport.

An ``EvalReport`` is saved under ``runs/<run_id>/evals/<eval_id>/report.json`` (per-example
results beside it in ``examples.jsonl``); deploy reads ``promotable`` from the latest one.
"""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

GATE_OPS: tuple[str, ...] = (">=", ">", "<=", "<", "==")


@contract
class Gate(Contract):
    """``metric op threshold``; ``metric`` is a dotted path into the metrics ("per_class.refund.recall"),
    where ``*`` stands for every key at that level (the worst value counts: per-class minimum)."""

    metric: str
    op: str
    threshold: float


@contract
class GateResult(Contract):
    metric: str
    op: str
    threshold: float
    value: float | None  # None when the run produced no such metric (the gate then fails)
    passed: bool
    reason: str | None = None  # why it failed, in words, when value is None


@contract
class FailureCluster(Contract):
    """Failing examples that belong together: a confusion pair (label tasks) or a k-means group
    of MiniLM embeddings (text tasks). ``source`` is a locator Map can open (``jsonl:…``)."""

    cluster_id: str  # stable: derived from the pair or from the member example ids
    kind: str  # confusion_pair | embedding_kmeans
    size: int
    label: str  # what the cluster is, in words
    example_ids: tuple[str, ...]
    source: str
    gold_label: str | None = None  # label tasks: the true class
    predicted_label: str | None = None


@contract
class EvalReport(Contract):
    eval_id: str
    run_id: str
    pack: str  # pack name ("" = no pack: metrics only, not promotable)
    task_profile: str
    scoring_mode: str
    dataset: dict[str, Any]  # {kind: split|file, name, path, rows, sha256}
    metrics: dict[str, Any]
    gates: tuple[GateResult, ...]
    pass_rate: float | None  # share of examples judged correct / passing
    promotable: bool
    not_promotable_reason: str | None
    failure_clusters: tuple[FailureCluster, ...]
    n_examples: int
    judge: dict[str, Any] | None  # {status: used|unavailable|off, model, base_url, reason}
    warnings: tuple[str, ...]
    seconds: float
    created_at: str
    path: str  # the report folder
