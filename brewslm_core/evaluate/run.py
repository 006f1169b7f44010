"""``evaluate(project, run_id, pack)``: score a trained run on a pack's dataset, check its gates,
cluster its failures and save an EvalReport under ``runs/<run_id>/evals/<eval_id>/``."""

from __future__ import annotations

import inspect
import json
import os
import secrets
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.evaluate import EvalReport, FailureCluster, GateResult
from ..contracts.prepare import SCORING_MODES
from .clusters import failure_clusters
from .dataset import EvalDatasetMissing, load_rows, row_id
from .gates import check_gates, promotion
from .judge import JudgeUnavailable, judge_examples
from .metrics import custom_metrics
from .packs import EvalPack, find_pack, list_packs, load_pack

if TYPE_CHECKING:
    from ..predict import LoadedRun
    from ..project import Project

DEFAULT_PACK = "default"  # used when the project has evals/default.yaml and no pack is named
JUDGED_TASKS = ("seq2seq", "rag", "qa", "vision_language", "structured_extraction")


class EvalRuntimeError(RuntimeError):
    """Scoring failed; the ``eval_runtime_error`` event holds the traceback."""


def new_eval_id() -> str:
    return f"eval-{secrets.token_hex(4)}"


def evals_root(project: Project, run_id: str) -> Path:
    return project.run_dir(run_id) / "evals"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def resolve_pack(project: Project, pack: str | EvalPack | None, task_profile: str) -> EvalPack | None:
    if isinstance(pack, EvalPack):
        return pack
    if pack is None:
        if DEFAULT_PACK not in list_packs(project):
            return None
        pack = DEFAULT_PACK
    return load_pack(project, pack, task_profile)


def _score(loaded: LoadedRun, rows: list[dict[str, Any]]) -> dict[str, Any]:
    score = loaded.handler.score
    kwargs: dict[str, Any] = {"per_example": True}
    if "generate_rows" in inspect.signature(score).parameters:
        kwargs["generate_rows"] = len(rows)  # Evaluate generates for every row, not a sample
    return score(loaded.model, rows, **kwargs)


def _latency(loaded: LoadedRun, rows: list[dict[str, Any]], n: int) -> dict[str, float]:
    """Single-row predict latency (ms) over the first ``n`` rows: what one request costs."""
    import numpy as np
    import torch

    took = []
    with torch.no_grad():
        for row in rows[:n]:
            t0 = time.perf_counter()
            loaded.handler.predict_rows(loaded.model, [row])
            took.append((time.perf_counter() - t0) * 1000.0)
    return {"latency_p50_ms": float(np.percentile(took, 50)),
            "latency_p95_ms": float(np.percentile(took, 95)), "latency_rows": len(took)}


def _emit(project: Project, severity: str, reason: str | None, eval_id: str, run_id: str, summary: str,
          payload: dict[str, Any]) -> None:
    project.events.append(stage="eval", severity=severity, reason_code=reason, run_id=eval_id,
                          parent_run_id=run_id, summary=summary, payload=payload)


def evaluate(project: Project, run_id: str, pack: str | EvalPack | None = None, *,
             loaded: LoadedRun | None = None, device: str = "cpu") -> EvalReport:
    """Score ``run_id`` on the pack's dataset (no pack: the manifest's eval split, no gates).

    Raises EvalPackError (every problem listed), EvalDatasetMissing (recorded as
    ``eval_dataset_missing``) or EvalRuntimeError (recorded as ``eval_runtime_error``).
    """
    from ..predict import read_plan

    eval_id = new_eval_id()
    started = time.monotonic()
    plan = loaded.plan if loaded is not None else read_plan(project, run_id)
    task_profile = plan["task_profile"]
    chosen = resolve_pack(project, pack, task_profile)
    dataset = chosen.dataset if chosen else {"split": "eval"}
    try:
        rows, info = load_rows(project, dataset, chosen.max_rows if chosen else None)
    except EvalDatasetMissing as exc:
        _emit(project, "error", "eval_dataset_missing", eval_id, run_id, f"eval dataset missing: {exc}",
              {"eval_id": eval_id, "pack": chosen.name if chosen else "", "dataset": dataset,
               "error": str(exc)})
        raise
    try:
        return _evaluate(project, run_id, eval_id, chosen, rows, info, plan, loaded, device, started)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        _emit(project, "error", "eval_runtime_error", eval_id, run_id, f"eval failed: {error}",
              {"eval_id": eval_id, "pack": chosen.name if chosen else "", "error": error,
               "traceback": "".join(traceback.format_exception(exc))})
        raise EvalRuntimeError(f"eval {eval_id} of {run_id} failed: {type(exc).__name__}: {exc}") from exc


def _evaluate(project: Project, run_id: str, eval_id: str, pack: EvalPack | None, rows: list[dict[str, Any]],
              info: dict[str, Any], plan: dict[str, Any], loaded: LoadedRun | None, device: str,
              started: float) -> EvalReport:
    from ..predict import load_run

    loaded = loaded or load_run(project, run_id, device=device)
    task_profile = loaded.task_profile
    warnings: list[str] = []
    t0 = time.perf_counter()
    scores = _score(loaded, rows)
    scoring_seconds = time.perf_counter() - t0
    examples = list(scores.pop("per_example", []))
    for e in examples:
        e["id"] = row_id(rows[e["index"]], e["index"], info["name"])
    judged = [e for e in examples if isinstance(e.get("correct"), bool)]
    pass_rate = sum(e["correct"] for e in judged) / len(judged) if judged else None
    metrics: dict[str, Any] = {**scores, "pass_rate": pass_rate, "n_examples": len(rows),
                               "rows_per_s": len(rows) / scoring_seconds if scoring_seconds > 0 else None}
    if pack:  # registered user metrics the pack names (see evaluate.metrics)
        wanted = [*pack.metrics, *(g.metric.split(".")[0] for g in pack.gates)]
        metrics.update(custom_metrics(wanted, examples, rows))
    if pack and pack.latency_rows:
        metrics.update(_latency(loaded, rows, pack.latency_rows))
    judge = _judge(project, run_id, eval_id, pack, task_profile, examples, metrics, warnings)
    gates = check_gates(pack.gates, metrics) if pack else []
    promotable, why = promotion(pack.name if pack else "", gates)
    folder = evals_root(project, run_id) / eval_id
    folder.mkdir(parents=True, exist_ok=True)
    clusters = failure_clusters(task_profile, examples, rows, folder / "clusters")
    state = plan.get("handler_state") or {}
    report = EvalReport(
        eval_id=eval_id, run_id=run_id, pack=pack.name if pack else "", task_profile=task_profile,
        scoring_mode=str(state.get("scoring_mode") or SCORING_MODES.get(task_profile, "")),
        dataset=info, metrics=metrics, gates=tuple(gates), pass_rate=pass_rate, promotable=promotable,
        not_promotable_reason=why, failure_clusters=tuple(clusters), n_examples=len(rows), judge=judge,
        warnings=tuple(warnings), seconds=time.monotonic() - started, created_at=_now(), path=str(folder),
    )
    with open(folder / "examples.jsonl", "w", encoding="utf-8") as fh:
        for e in examples:
            fh.write(json.dumps(e, ensure_ascii=False, default=str) + "\n")
    tmp = folder / "report.json.tmp"
    tmp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, folder / "report.json")
    passed = sum(g.passed for g in gates)
    _emit(project, "info", None, eval_id, run_id,
          f"eval {eval_id} of {run_id}: {passed}/{len(gates)} gates passed"
          + ("" if promotable else f"; not promotable ({why})"),
          {"eval_id": eval_id, "pack": report.pack, "dataset": info, "pass_rate": pass_rate,
           "promotable": promotable, "not_promotable_reason": why,
           "gates": [g.to_dict() for g in gates], "failure_clusters": len(clusters),
           "report_path": str(folder / "report.json"),
           "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None}})
    return report


def _judge(project: Project, run_id: str, eval_id: str, pack: EvalPack | None, task_profile: str,
           examples: list[dict[str, Any]], metrics: dict[str, Any], warnings: list[str]
           ) -> dict[str, Any] | None:
    if not pack or not pack.judge:
        return None
    settings = pack.judge
    facts = {"model": settings["model"], "base_url": settings["base_url"]}
    if task_profile not in JUDGED_TASKS:
        return {**facts, "status": "not_applicable",
                "reason": f"{task_profile} has no generated text to judge"}
    try:
        found = judge_examples(settings, examples, faithfulness=task_profile == "rag")
    except JudgeUnavailable as exc:
        why = f"judge at {settings['base_url']} unavailable: {exc}; judge metrics skipped"
        warnings.append(why)
        _emit(project, "warning", "eval_judge_unavailable", eval_id, run_id, why,
              {"eval_id": eval_id, **facts, "error": str(exc)})
        return {**facts, "status": "unavailable", "reason": str(exc)}
    metrics.update(found["metrics"])
    by_index = {g["index"]: g for g in found["graded"]}
    for e in examples:
        e.update({k: v for k, v in by_index.get(e["index"], {}).items() if k != "index"})
    return {**facts, "status": "used", "judged": found["metrics"]["judge_n"]}


# ---- reading reports back -------------------------------------------------------------------
def report_from_dict(data: dict[str, Any]) -> EvalReport:
    fields = set(EvalReport.__dataclass_fields__)
    body = {k: v for k, v in data.items() if k in fields}
    body["gates"] = tuple(GateResult(**g) for g in data.get("gates") or [])
    body["failure_clusters"] = tuple(
        FailureCluster(**{**c, "example_ids": tuple(c.get("example_ids") or [])})
        for c in data.get("failure_clusters") or []
    )
    body["warnings"] = tuple(data.get("warnings") or [])
    return EvalReport(**body)


def list_reports(project: Project, run_id: str) -> list[EvalReport]:
    """Every saved report of the run, oldest first."""
    found = []
    for path in evals_root(project, run_id).glob("*/report.json"):
        try:
            found.append(report_from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, TypeError, KeyError):
            continue  # a report from an older schema or cut short: not the latest one
    return sorted(found, key=lambda r: r.created_at)


def latest_report(project: Project, run_id: str) -> EvalReport | None:
    reports = list_reports(project, run_id)
    return reports[-1] if reports else None


def load_report(project: Project, run_id: str, eval_id: str) -> EvalReport:
    path = evals_root(project, run_id) / eval_id / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no eval {eval_id} for run {run_id} ({path})")
    return report_from_dict(json.loads(path.read_text(encoding="utf-8")))


__all__ = ["EvalRuntimeError", "evaluate", "find_pack", "latest_report", "list_reports", "load_report"]
