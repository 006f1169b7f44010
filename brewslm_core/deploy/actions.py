"""deploy / promote / reject / rollback / drift: the DeploymentVersion state machine.

Every action appends a revision under ``deployments/`` and records a ``deployment`` RunEvent
(run_id = the deploy id, parent_run_id = the export). Refusals raise DeploymentError with the
taxonomy code and leave the records as they were (a failed smoke is recorded on the candidate).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from .. import tasks
from ..contracts.deploy import TARGETS as TARGET_NAMES
from ..contracts.deploy import DeploymentVersion
from ..project import Project
from . import client, serve, store
from .sources import gold_examples, promotable, serve_spec
from .store import DeploymentError
from .targets import TARGETS

DRIFT_TOLERANCE = 0.1  # a drop of the gold pass rate beyond this (absolute) is drift
DRIFT_TARGET = "brewslm_core.deploy.actions:drift_task"
GOLD_LIMIT = 32  # gold prompts per smoke/drift check (keeps checks cheap on CPU)


def _event(
    project: Project,
    dep: DeploymentVersion,
    summary: str,
    *,
    severity: str = "info",
    reason_code: str | None = None,
    **payload: Any,
) -> None:
    project.events.append(
        stage="deployment",
        severity=severity,
        summary=summary,
        reason_code=reason_code,
        run_id=dep.deploy_id,
        parent_run_id=dep.export_id,
        payload={"target": dep.target, "status": dep.status, "endpoint": dep.endpoint, **payload},
    )


def _refuse(project: Project, dep: DeploymentVersion, code: str, message: str, **payload: Any) -> None:
    _event(project, dep, message, severity="error", reason_code=code, **payload)
    raise DeploymentError(message, code)


def deploy(
    project: Project,
    export_id: str,
    target: str,
    *,
    endpoint: str | None = None,
    port: int | None = None,
    threads: int | None = None,
    accelerators: str = "L4:1",
) -> DeploymentVersion:
    """Serve (or, for skypilot, write the task for) an export: a new ``candidate`` deployment."""
    if target not in TARGET_NAMES:
        raise DeploymentError(f"unknown deploy target {target!r}; use one of {', '.join(TARGET_NAMES)}")
    spec = serve_spec(project, export_id)
    deploy_id = store.new_deploy_id()
    fields = TARGETS.get(target)(
        project, deploy_id, spec, endpoint=endpoint, port=port, threads=threads, accelerators=accelerators
    )
    fields.setdefault("note", None)
    with store.lock(project):
        dep = store.create(
            project,
            deploy_id=deploy_id,
            export_id=spec.export_id,
            source_run=spec.source_run,
            task_kind=spec.kind,
            target=target,
            **fields,
        )
    _event(
        project,
        dep,
        f"deployed {spec.export_id} to {target} ({dep.server})",
        server=dep.server,
        action="deploy",
        task_id=dep.task_id,
        artifact=dep.artifact,
    )
    return dep


def _promoted(project: Project) -> DeploymentVersion | None:
    live = [d for d in store.list_deployments(project) if d.status == "promoted"]
    return live[-1] if live else None


def _ensure_serving(project: Project, dep: DeploymentVersion) -> DeploymentVersion:
    """Restart a managed server whose task has ended (e.g. before a rollback brings it back), on
    the same port, so the endpoint clients know stays the same."""
    if dep.task_id is None or serve.is_running(project, dep.task_id):
        return dep
    spec = serve_spec(project, dep.export_id)
    port = urlparse(dep.endpoint).port if dep.endpoint else None
    fields = TARGETS.get(dep.target)(project, dep.deploy_id, spec, port=port)
    return store.revise(
        project,
        dep,
        endpoint=fields["endpoint"],
        task_id=fields["task_id"],
        note=f"server restarted as task {fields['task_id']}",
    )


def promote(project: Project, deploy_id: str) -> DeploymentVersion:
    """candidate → promoted, after its run's eval report is promotable and a live smoke check passes."""
    dep = store.get(project, deploy_id)
    if dep.status != "candidate":
        _refuse(
            project,
            dep,
            "deployment_promote_blocked",
            f"cannot promote {deploy_id}: it is {dep.status}, only a candidate can be promoted",
        )
    ok, why, eval_id = promotable(project, dep.source_run)
    if not ok:
        _refuse(
            project, dep, "deployment_promote_blocked", f"cannot promote {deploy_id}: {why}", eval_id=eval_id
        )
    source, examples = gold_examples(project, GOLD_LIMIT)
    result = client.smoke(dep, source, examples)
    with store.lock(project):
        dep = store.revise(project, store.get(project, deploy_id), smoke=result)
        if not result.ok:
            _refuse(
                project,
                dep,
                "deployment_smoke_failed",
                f"smoke check of {deploy_id} failed: {result.error}",
                smoke=result.to_dict(),
            )
        previous = _promoted(project)
        if previous is not None:
            store.revise(project, previous, status="superseded", superseded_by=deploy_id)
        gold = result.gold
        dep = store.revise(
            project,
            dep,
            status="promoted",
            promoted_at=store.now(),
            predecessor=previous.deploy_id if previous else None,
            baseline_pass_rate=gold.pass_rate if gold else None,
        )
    _event(
        project,
        dep,
        f"promoted {deploy_id} (eval {eval_id})",
        action="promote",
        eval_id=eval_id,
        superseded=dep.predecessor,
        baseline_pass_rate=dep.baseline_pass_rate,
        one_token=result.one_token,
        gold_n=gold.n if gold else 0,
    )
    return dep


def reject(project: Project, deploy_id: str, reason: str = "") -> DeploymentVersion:
    """candidate → rejected (final); its managed server is stopped."""
    with store.lock(project):
        dep = store.get(project, deploy_id)
        if dep.status != "candidate":
            raise DeploymentError(
                f"cannot reject {deploy_id}: it is {dep.status}, only a candidate can be rejected"
            )
        dep = store.revise(project, dep, status="rejected", note=reason or None)
    serve.stop_server(project, dep.task_id)
    _event(project, dep, f"rejected {deploy_id}" + (f": {reason}" if reason else ""), action="reject")
    return dep


def rollback(project: Project, deploy_id: str | None = None) -> DeploymentVersion:
    """The promoted deployment → rolled_back, its superseded predecessor → promoted again."""
    current = store.get(project, deploy_id) if deploy_id else _promoted(project)
    if current is None or current.status != "promoted":
        what = f"{deploy_id} is {current.status}" if current else "nothing is promoted"
        anchor = current or (store.list_deployments(project) or [None])[-1]
        msg = f"cannot roll back: {what}; only the promoted deployment rolls back to its predecessor"
        if anchor is None:
            raise DeploymentError(msg, "deployment_rollback_no_predecessor")
        _refuse(project, anchor, "deployment_rollback_no_predecessor", msg)
    pred = store.get(project, current.predecessor) if current.predecessor else None
    if pred is None or pred.status != "superseded":
        _refuse(
            project,
            current,
            "deployment_rollback_no_predecessor",
            f"cannot roll back {current.deploy_id}: "
            + (f"its predecessor {pred.deploy_id} is {pred.status}" if pred else "it has no predecessor"),
        )
    with store.lock(project):
        pred = _ensure_serving(project, pred)
    source, examples = gold_examples(project, GOLD_LIMIT)
    result = client.smoke(pred, source, examples)
    if not result.ok:
        _refuse(
            project,
            pred,
            "deployment_smoke_failed",
            f"rollback to {pred.deploy_id} refused, its smoke check failed: {result.error}",
            smoke=result.to_dict(),
        )
    with store.lock(project):
        current = store.revise(project, store.get(project, current.deploy_id), status="rolled_back")
        pred = store.revise(
            project,
            store.get(project, pred.deploy_id),
            status="promoted",
            superseded_by=None,
            smoke=result,
            promoted_at=store.now(),
        )
    serve.stop_server(project, current.task_id)
    _event(
        project,
        current,
        f"rolled back {current.deploy_id} to {pred.deploy_id}",
        action="rollback",
        restored=pred.deploy_id,
    )
    return pred


def drift(
    project: Project, deploy_id: str | None = None, tolerance: float = DRIFT_TOLERANCE
) -> dict[str, Any]:
    """Re-run the gold set against the live endpoint and compare with the promotion baseline."""
    dep = store.get(project, deploy_id) if deploy_id else _promoted(project)
    if dep is None or dep.status != "promoted":
        raise DeploymentError(
            "drift is checked on the promoted deployment; "
            + (f"{deploy_id} is {dep.status}" if dep else "nothing is promoted")
        )
    if dep.baseline_pass_rate is None:
        raise DeploymentError(
            f"{dep.deploy_id} has no gold baseline (no gold or eval split at promotion); "
            "prepare with a gold import, then deploy and promote again"
        )
    source, examples = gold_examples(project, GOLD_LIMIT)
    entry: dict[str, Any] = {
        "at": store.now(),
        "baseline": dep.baseline_pass_rate,
        "tolerance": tolerance,
        "source": source,
    }
    try:
        gold = client.gold_check(dep, source, examples)
        entry.update(
            pass_rate=gold.pass_rate,
            n=gold.n,
            error=None,
            failed_ids=[e["id"] for e in gold.examples if not e["passed"]],
        )
    except Exception as exc:  # noqa: BLE001 - an endpoint that stops answering has drifted too
        entry.update(pass_rate=None, n=0, error=f"{type(exc).__name__}: {exc}", failed_ids=[])
    rate = entry["pass_rate"]
    entry["delta"] = None if rate is None else rate - dep.baseline_pass_rate
    entry["drifted"] = rate is None or entry["delta"] < -tolerance
    with store.lock(project):
        dep = store.get(project, dep.deploy_id)
        dep = store.revise(project, dep, drift=(*dep.drift, entry))
    if entry["drifted"]:
        why = entry["error"] or f"gold pass rate {rate:.3f} vs baseline {dep.baseline_pass_rate:.3f}"
        _event(
            project,
            dep,
            f"drift on {dep.deploy_id}: {why}",
            severity="warning",
            reason_code="deployment_drift_detected",
            action="drift",
            **entry,
        )
    else:
        _event(project, dep, f"drift check on {dep.deploy_id}: pass rate {rate:.3f}", action="drift", **entry)
    return entry


def drift_task(
    ctx: tasks.TaskContext,
    *,
    deploy_id: str,
    every_s: float,
    times: int | None = None,
    tolerance: float = DRIFT_TOLERANCE,
) -> dict[str, Any]:
    """Background work: a drift check every ``every_s`` seconds (``times`` checks, or until cancelled)."""
    done, drifted = 0, 0
    while times is None or done < times:
        entry = drift(ctx.project, deploy_id, tolerance)
        done += 1
        drifted += bool(entry["drifted"])
        ctx.progress(done, times, f"last pass rate {entry['pass_rate']}")
        if times is not None and done >= times:
            break
        end = time.monotonic() + every_s
        while time.monotonic() < end:
            ctx.check_cancelled()
            time.sleep(min(0.5, every_s))
    return {"checks": done, "drifted": drifted}


def schedule_drift(
    project: Project,
    deploy_id: str,
    every_s: float = 3600.0,
    times: int | None = None,
    tolerance: float = DRIFT_TOLERANCE,
) -> str:
    """Start drift checks on a schedule as a background task; returns its task id."""
    dep = store.get(project, deploy_id)
    if dep.status != "promoted":
        raise DeploymentError(f"drift checks run on a promoted deployment; {deploy_id} is {dep.status}")
    return tasks.start(
        project,
        DRIFT_TARGET,
        {"deploy_id": deploy_id, "every_s": every_s, "times": times, "tolerance": tolerance},
        kind="deploy-drift",
        runner="process",
    )


def stop(project: Project, deploy_id: str) -> DeploymentVersion:
    """Stop a deployment's managed server (its status is unchanged)."""
    dep = store.get(project, deploy_id)
    serve.stop_server(project, dep.task_id)
    with store.lock(project):
        dep = store.revise(project, store.get(project, deploy_id), note="server stopped")
    _event(project, dep, f"stopped the server of {deploy_id}", action="stop")
    return dep


def restart(project: Project, deploy_id: str) -> DeploymentVersion:
    """Stop and start a deployment's managed server again from its export (status unchanged)."""
    dep = store.get(project, deploy_id)
    if dep.task_id is None:
        raise DeploymentError(
            f"{deploy_id} ({dep.server}) has no server brewslm manages; restart it yourself"
        )
    serve.stop_server(project, dep.task_id)
    with store.lock(project):
        dep = _ensure_serving(project, store.get(project, deploy_id))
    _event(project, dep, f"restarted the server of {deploy_id}", action="restart", task_id=dep.task_id)
    return dep
