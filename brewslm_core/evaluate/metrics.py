"""User metrics: register a function and name it in a pack's ``metrics`` (and gates).

    from brewslm_core.evaluate import METRICS

    @METRICS.register("refund_recall_floor")
    def refund_recall_floor(examples, rows):       # examples: the per-example results
        hits = [e["correct"] for e in examples if e["gold"] == "refund"]
        return sum(hits) / len(hits) if hits else None

A registered metric is computed after the handler's own ``score()`` and sits in the report's
metrics beside them; gates read it like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..registry import Registry

MetricFn = Callable[[Sequence[dict[str, Any]], Sequence[dict[str, Any]]], float | None]
METRICS: Registry[MetricFn] = Registry("eval metric")


def custom_metrics(names: Sequence[str], examples: Sequence[dict[str, Any]],
                   rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The registered metrics among ``names``, computed on the per-example results."""
    out: dict[str, Any] = {}
    for name in names:
        if name in METRICS:
            value = METRICS.get(name)(examples, rows)
            out[name] = None if value is None else float(value)
    return out
