"""Task work functions behind the long playbooks (importable by a fresh worker process)."""

from __future__ import annotations

import importlib
from typing import Any

from ..tasks import TaskContext


def remap_task(ctx: TaskContext, *, locator: str, shape: str, field_map: dict[str, str],
               gold: bool = False) -> dict[str, Any]:
    from ..mapping import commit

    ctx.progress(0, 1, f"committing {locator} as {shape}")
    result = commit(ctx.project, locator, shape, field_map, gold=gold)
    ctx.progress(1, 1, "committed")
    return result.to_dict()


def prepare_task(ctx: TaskContext) -> dict[str, Any]:
    from ..prepare import prepare

    manifest = prepare(ctx.project)
    return {"counts": dict(manifest.counts), "task_profile": manifest.task_profile}


def preflight_task(ctx: TaskContext, *, config: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..preflight import preflight

    report = preflight(ctx.project, config or None)
    return {"passed": report.passed, "run_id": report.run_id,
            "blockers": [b.code for b in report.blockers],
            "warnings": [w.code for w in report.warnings]}


def evaluate_task(ctx: TaskContext, *, run_id: str) -> dict[str, Any]:
    evaluate = importlib.import_module("brewslm_core.evaluate")
    report = evaluate.evaluate(ctx.project, run_id)
    return report.to_dict() if hasattr(report, "to_dict") else dict(report)
