"""Coach stage ``eval``: failing gates, weak classes and the failure clusters of the latest report.

Reads EvalReports only through ``brewslm_core.evaluate.latest_report(project, run_id)``; until
that stage exists (or a run has no report) it says so.
"""

from __future__ import annotations

from typing import Any

from ..contracts.coach import Suggestion
from .base import GENERATORS, cluster, navigate, ordered, playbook, say
from .facts import Facts

WEAK_RECALL = 0.6  # a class below this recall gets its own suggestion


def _completed_runs(facts: Facts) -> list[str]:
    seen: dict[str, bool] = {}
    for ev in facts.events("training"):
        run = ev.get("run_id")
        payload = ev.get("payload") or {}
        if run and "/probe" not in str(run) and "mode" not in payload and run not in seen:
            seen[str(run)] = not ev.get("reason_code")
    return [r for r, ok in seen.items() if ok]


def _cluster_label(c: dict[str, Any]) -> str:
    return str(c.get("label") or c.get("summary") or f"cluster {c.get('cluster_id')}")


def _per_class(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    for key in ("per_class", "per_label", "classes"):
        value = metrics.get(key)
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items() if isinstance(v, dict)}
    return {}


def report_suggestions(run_id: str, report: dict[str, Any]) -> list[Suggestion]:
    out: list[Suggestion] = []
    eval_id = report.get("eval_id")
    clusters = [c for c in report.get("failure_clusters") or [] if isinstance(c, dict)]
    for gate in report.get("gates") or []:
        if isinstance(gate, dict) and not gate.get("passed", True):
            value = gate.get("value")
            shown = f"{value:.3f}" if isinstance(value, (int, float)) else str(value)
            out.append(say("critical", f"Gate {gate.get('metric')} {gate.get('op', '>=')} "
                           f"{gate.get('threshold')} failed: {shown}",
                           f"Run {run_id} (eval {eval_id}) is not promotable"
                           + (f": {report.get('not_promotable_reason')}"
                              if report.get("not_promotable_reason") else "")
                           + f". Pass rate {float(report.get('pass_rate') or 0):.0%}.",
                           cluster(f"Add data for {_cluster_label(clusters[0])}",
                                   clusters[0].get("cluster_id"), run_id=run_id, eval_id=eval_id)
                           if clusters else navigate("Open the eval report", "eval", run_id=run_id,
                                                     eval_id=eval_id)))
    for label, scores in sorted(_per_class(report.get("metrics") or {}).items(),
                                key=lambda kv: float(kv[1].get("recall", 1.0))):
        recall = scores.get("recall")
        if not isinstance(recall, (int, float)) or recall >= WEAK_RECALL:
            continue
        mine = [c for c in clusters if label in (c.get("label"), c.get("gold_label"), c.get("class"))]
        if mine:
            best = max(mine, key=lambda c: int(c.get("size", 0)))
            out.append(say("warning", f"Class `{label}` recall {recall:.2f} — cluster "
                           f"{best.get('cluster_id')} holds {best.get('size')} of its failures",
                           f"Open cluster {best.get('cluster_id')} as a data source, map and label "
                           "similar rows, and retrain.",
                           cluster(f"Augment from cluster {best.get('cluster_id')}",
                                   best.get("cluster_id"), run_id=run_id, eval_id=eval_id)))
        else:
            out.append(say("warning", f"Class `{label}` recall {recall:.2f}",
                           f"Below {WEAK_RECALL}; label more `{label}` rows.",
                           playbook(f"Label more `{label}` rows", "annotate_topup", rows=20,
                                    label=label)))
    named = {str(c.get("cluster_id")) for c in clusters if any(
        str(c.get("cluster_id")) == str(s.action.params.get("cluster_id")) for s in out)}
    for c in sorted(clusters, key=lambda c: -int(c.get("size", 0))):
        if str(c.get("cluster_id")) in named:
            continue
        out.append(say("warning" if int(c.get("size", 0)) >= 5 else "info",
                       f"Failure cluster {c.get('cluster_id')}: {c.get('size')} failures — "
                       f"{_cluster_label(c)}",
                       f"{c.get('size')} failed examples of eval {eval_id} look alike; open them "
                       "as a Map source to add similar training rows.",
                       cluster(f"Augment from cluster {c.get('cluster_id')}", c.get("cluster_id"),
                               run_id=run_id, eval_id=eval_id)))
    if report.get("promotable") and not out:
        out.append(say("info", f"Run {run_id} passes every gate "
                       f"(pass rate {float(report.get('pass_rate') or 0):.0%})",
                       "It is promotable: export it next.", navigate("Export", "export", run_id=run_id)))
    return out


@GENERATORS.register("eval")
def eval_suggestions(facts: Facts) -> list[Suggestion]:
    runs = _completed_runs(facts)
    if not runs:
        return [say("info", "There is no eval report yet: no run has finished",
                    "Train a run first; evaluation scores it on the eval split and the gold set.",
                    navigate("Go to training", "training"))]
    run_id = runs[0]
    report, why = facts.eval_report(run_id)
    if report is None:
        return [say("info", f"There is no eval report yet for {run_id}", f"{why[:1].upper()}{why[1:]}.",
                    playbook(f"Evaluate {run_id}", "evaluate", run_id=run_id))]
    return ordered(report_suggestions(run_id, report))
