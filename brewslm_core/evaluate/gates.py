"""Gates against a metrics dict: dotted paths, ``*`` = every key at that level (worst counts)."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from ..contracts.evaluate import Gate, GateResult

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


def values_at(metrics: Any, path: Sequence[str]) -> list[float]:
    """Every number found at ``path`` (``*`` fans out over a mapping's values)."""
    if not path:
        if isinstance(metrics, bool):
            return [float(metrics)]
        if isinstance(metrics, (int, float)) and not math.isnan(float(metrics)):
            return [float(metrics)]
        return []
    head, rest = path[0], path[1:]
    if not isinstance(metrics, dict):
        return []
    if head == "*":
        return [v for value in metrics.values() for v in values_at(value, rest)]
    return values_at(metrics[head], rest) if head in metrics else []


def metric_value(metrics: dict[str, Any], metric: str, op: str) -> float | None:
    """The value a gate compares: the worst of several under ``*`` (min for >=/>, max for <=/<)."""
    found = values_at(metrics, metric.split("."))
    if not found:
        return None
    if len(found) == 1 or op == "==":
        return found[0] if len(found) == 1 else min(found)
    return min(found) if op in (">=", ">") else max(found)


def check_gates(gates: Sequence[Gate], metrics: dict[str, Any]) -> list[GateResult]:
    out = []
    for gate in gates:
        value = metric_value(metrics, gate.metric, gate.op)
        if value is None:
            out.append(GateResult(metric=gate.metric, op=gate.op, threshold=gate.threshold, value=None,
                                  passed=False, reason=f"the run produced no value for {gate.metric}"))
            continue
        passed = bool(OPS[gate.op](value, gate.threshold))
        out.append(GateResult(metric=gate.metric, op=gate.op, threshold=gate.threshold, value=value,
                              passed=passed))
    return out


def promotion(pack_name: str, results: Sequence[GateResult]) -> tuple[bool, str | None]:
    """(promotable, why not): all gates passed; no pack or no gates is never promotable."""
    if not pack_name:
        return False, "no eval pack was used: metrics only; write one with `brewslm eval init`"
    if not results:
        return False, f"pack {pack_name!r} has no gates: nothing says the run is good enough"
    failed = [r for r in results if not r.passed]
    if failed:
        said = "; ".join(
            f"{r.metric} {r.op} {r.threshold:g} failed"
            + (f" ({r.value:.4g})" if r.value is not None else f" ({r.reason})")
            for r in failed
        )
        return False, f"{len(failed)} of {len(results)} gates failed: {said}"
    return True, None
