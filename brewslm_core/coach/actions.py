"""``execute(project, action)``: the one place a Coach suggestion has side effects.

Routed on ``action.kind`` alone. ``navigate`` changes nothing (it tells the face where to go).
``run_playbook`` runs a named playbook: quick ones (an annotation job, a promotion) finish
inline; long ones (re-map, clean, prepare, preflight, train, resume, evaluate) start a
background task and return its id at once. ``augment_from_cluster`` writes the cluster's failed
examples as a JSONL source the Map stage opens.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from typing import Any

from .. import tasks
from ..contracts.coach import Action, ActionResult
from ..project import Project
from ..registry import Registry
from .facts import EVALUATE_PACKAGE, read_json

PLAYBOOK_MODULE = "brewslm_core.coach.playbooks"
TRAIN_TASK = "brewslm_core.train.runner:train_task"  # the train stage's own task work function
Playbook = Callable[[Project, dict[str, Any]], ActionResult]
PLAYBOOKS: Registry[Playbook] = Registry("playbook")


class ActionError(ValueError):
    """The action cannot run: unknown playbook, missing params, nothing to act on."""


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _need(params: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if params.get(n) in (None, "")]
    if missing:
        raise ActionError(f"this action needs params {missing}")
    for name in ("run_id", "job_id", "eval_id"):  # they name folders: never a path
        value = params.get(name)
        if name in names and not (isinstance(value, str) and _SAFE_ID.match(value)):
            raise ActionError(f"{name} {value!r} is not an id")
    return [params[n] for n in names]


def _task(project: Project, work: str, kwargs: dict[str, Any], kind: str,
          runner: str = "thread") -> ActionResult:
    task_id = tasks.start(project, f"{PLAYBOOK_MODULE}:{work}", kwargs, kind=kind, runner=runner)
    return ActionResult(kind="run_playbook", status="started", task_id=task_id,
                        result={"playbook": work.removesuffix("_task")})


def _done(kind: str, **result: Any) -> ActionResult:
    return ActionResult(kind=kind, status="done", task_id=None, result=result)


@PLAYBOOKS.register("remap")
def _remap(project: Project, p: dict[str, Any]) -> ActionResult:
    locator, shape, field_map = _need(p, "locator", "shape", "field_map")
    return _task(project, "remap_task", {"locator": locator, "shape": shape,
                                         "field_map": dict(field_map), "gold": bool(p.get("gold"))},
                 kind="remap")


@PLAYBOOKS.register("clean")
def _clean(project: Project, p: dict[str, Any]) -> ActionResult:
    from ..clean import CleanConfig, start_clean

    config = CleanConfig.from_dict(dict(p.get("config") or {}))  # a bad key fails here, at once
    return ActionResult(kind="run_playbook", status="started",
                        task_id=start_clean(project, config), result={"playbook": "clean"})


@PLAYBOOKS.register("prepare")
def _prepare(project: Project, p: dict[str, Any]) -> ActionResult:
    return _task(project, "prepare_task", {}, kind="prepare")


@PLAYBOOKS.register("preflight")
def _preflight(project: Project, p: dict[str, Any]) -> ActionResult:
    return _task(project, "preflight_task", {"config": dict(p.get("config") or {})},
                 kind="preflight")


def _train_task(project: Project, config: dict[str, Any], run_id: str | None,
                resume: bool) -> ActionResult:
    task_id = tasks.start(project, TRAIN_TASK, {"config": config, "run_id": run_id,
                                                 "resume": resume}, kind="train", runner="process")
    return ActionResult(kind="run_playbook", status="started", task_id=task_id,
                        result={"playbook": "resume" if resume else "train", "run_id": run_id})


def _run_config(project: Project, run_id: str) -> dict[str, Any]:
    for name in ("plan.json", "train_plan.json"):
        plan = read_json(project.run_dir(run_id) / name)
        if plan and plan.get("config"):
            return dict(plan["config"])
    raise ActionError(f"run {run_id!r} has no plan.json or train_plan.json to take its config from")


@PLAYBOOKS.register("train")
def _train(project: Project, p: dict[str, Any]) -> ActionResult:
    run_id = _need(p, "run_id")[0] if p.get("run_id") else None
    config = _run_config(project, run_id) if run_id else {}
    return _train_task(project, {**config, **dict(p.get("config") or {})}, run_id, False)


@PLAYBOOKS.register("retrain")
def _retrain(project: Project, p: dict[str, Any]) -> ActionResult:
    (run_id,) = _need(p, "run_id")
    return _train_task(project, {**_run_config(project, run_id), **dict(p.get("config") or {})},
                       None, False)


@PLAYBOOKS.register("resume")
def _resume(project: Project, p: dict[str, Any]) -> ActionResult:
    (run_id,) = _need(p, "run_id")
    return _train_task(project, _run_config(project, run_id), run_id, True)


@PLAYBOOKS.register("annotate_topup")
def _annotate_topup(project: Project, p: dict[str, Any]) -> ActionResult:
    from ..annotate import create_job

    rows = int(_need(p, "rows")[0])
    label = p.get("label")
    name = f"gold top-up ({rows} rows" + (f", {label})" if label else ")")
    job = create_job(project, name, target_rows=rows, source=str(p.get("source", "committed")),
                     actor=str(p.get("actor", "coach")))
    return _done("run_playbook", playbook="annotate_topup", job=job.to_dict())


@PLAYBOOKS.register("promote_annotations")
def _promote(project: Project, p: dict[str, Any]) -> ActionResult:
    from ..annotate import promote

    (job_id,) = _need(p, "job_id")
    return _done("run_playbook", playbook="promote_annotations", job_id=job_id,
                 promoted=promote(project, str(job_id), actor=str(p.get("actor", "coach"))))


@PLAYBOOKS.register("evaluate")
def _evaluate(project: Project, p: dict[str, Any]) -> ActionResult:
    (run_id,) = _need(p, "run_id")
    if importlib.util.find_spec(EVALUATE_PACKAGE) is None:
        raise ActionError("the evaluate stage is not installed in this version")
    return _task(project, "evaluate_task", {"run_id": run_id}, kind="eval")


def augment_from_cluster(project: Project, p: dict[str, Any]) -> ActionResult:
    """Open an eval failure cluster's rows (the report wrote them as JSONL) as a Map source."""
    from ..ingest import open_source

    cluster_id, run_id = _need(p, "cluster_id", "run_id")
    if importlib.util.find_spec(EVALUATE_PACKAGE) is None:
        raise ActionError("the evaluate stage is not installed in this version")
    evaluate = importlib.import_module(EVALUATE_PACKAGE)
    eval_id = p.get("eval_id")
    if eval_id:  # the report the suggestion was made from, even if a newer one exists
        _need(p, "eval_id")
        try:
            report = evaluate.load_report(project, str(run_id), str(eval_id))
        except FileNotFoundError as exc:
            raise ActionError(str(exc)) from None
    else:
        report = evaluate.latest_report(project, str(run_id))
    if report is None:
        raise ActionError(f"run {run_id} has no eval report")
    data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    found = [c for c in data.get("failure_clusters") or []
             if str(c.get("cluster_id")) == str(cluster_id)]
    if not found:
        raise ActionError(f"eval {data.get('eval_id')} has no failure cluster {cluster_id!r}")
    locator = str(found[0].get("source") or "")
    if not locator:
        raise ActionError(f"cluster {cluster_id} of eval {data.get('eval_id')} has no source rows")
    described = open_source(locator).describe()
    return _done("augment_from_cluster", locator=locator, cluster_id=cluster_id,
                 eval_id=data.get("eval_id"), label=found[0].get("label"), rows=described.rows,
                 fields=[f.name for f in described.fields],
                 next={"target": "map", "locator": locator})


def execute(project: Project, action: Action | dict[str, Any]) -> ActionResult:
    """Carry out one suggestion's action; ActionError says why it cannot."""
    if not isinstance(action, Action):
        action = Action.from_dict(action)
    if action.kind == "navigate":
        (target,) = _need(action.params, "target")
        return _done("navigate", **action.params)
    if action.kind == "augment_from_cluster":
        return augment_from_cluster(project, action.params)
    (name,) = _need(action.params, "playbook")
    try:
        run = PLAYBOOKS.get(str(name))
    except KeyError as exc:
        raise ActionError(str(exc)) from None
    return run(project, action.params)
