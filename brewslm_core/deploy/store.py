"""Append-only DeploymentVersion revisions: ``deployments/versions.jsonl``, one full record a line.

A change never rewrites a line: it appends the next revision of that deployment. The current
state of a deployment is its last revision; the file is the history.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..contracts.deploy import STATUSES, TRANSITIONS, DeploymentVersion, GoldCheck, SmokeResult
from ..locks import file_lock
from ..project import Project

VERSIONS = "versions.jsonl"


class DeploymentError(Exception):
    """A deployment action cannot go ahead; ``reason_code`` is the taxonomy code (or None)."""

    def __init__(self, message: str, reason_code: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_deploy_id() -> str:
    return f"deploy-{uuid.uuid4().hex[:10]}"


def _path(project: Project) -> Path:
    return project.deployments_dir / VERSIONS


def _from_dict(data: dict[str, Any]) -> DeploymentVersion:
    data = dict(data)
    smoke = data.get("smoke")
    if smoke is not None:
        gold = smoke.get("gold")
        smoke = SmokeResult(**{**smoke, "gold": _gold(gold) if gold else None})
    data["smoke"] = smoke
    data["drift"] = tuple(data.get("drift") or ())
    return DeploymentVersion(**data)


def _gold(data: dict[str, Any]) -> GoldCheck:
    return GoldCheck(**{**data, "examples": tuple(data.get("examples") or ())})


def _read_all(project: Project) -> list[dict[str, Any]]:
    path = _path(project)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line from a killed writer: skip it
                continue
    return out


def history(project: Project, deploy_id: str | None = None) -> list[DeploymentVersion]:
    """Every revision (of one deployment, or all), oldest first."""
    return [_from_dict(d) for d in _read_all(project) if deploy_id is None or d["deploy_id"] == deploy_id]


def list_deployments(project: Project) -> list[DeploymentVersion]:
    """The current revision of every deployment, in the order they were created."""
    latest: dict[str, dict[str, Any]] = {}
    for d in _read_all(project):
        latest[d["deploy_id"]] = d
    return [_from_dict(d) for d in latest.values()]


def get(project: Project, deploy_id: str) -> DeploymentVersion:
    for dep in list_deployments(project):
        if dep.deploy_id == deploy_id:
            return dep
    known = ", ".join(d.deploy_id for d in list_deployments(project)) or "none yet"
    raise DeploymentError(f"no deployment {deploy_id!r} in {project.root}; known: {known}")


def _append(project: Project, record: DeploymentVersion) -> None:
    path = _path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.to_dict(), separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def lock(project: Project):  # type: ignore[no-untyped-def]
    """Serialises read-modify-append across processes (promote vs a scheduled drift check)."""
    return file_lock(project.deployments_dir / ".lock")


def create(project: Project, **fields: Any) -> DeploymentVersion:
    stamp = now()
    record = DeploymentVersion(
        **{
            "revision": 1,
            "status": "candidate",
            "predecessor": None,
            "superseded_by": None,
            "baseline_pass_rate": None,
            "smoke": None,
            "drift": (),
            "created_at": stamp,
            "updated_at": stamp,
            "promoted_at": None,
            "note": None,
            **fields,
        }
    )
    _append(project, record)
    return record


def revise(project: Project, current: DeploymentVersion, **changes: Any) -> DeploymentVersion:
    """Append the next revision; a status change must be an allowed transition."""
    status = changes.get("status", current.status)
    if status not in STATUSES:
        raise ValueError(f"unknown deployment status {status!r}")
    if status != current.status and status not in TRANSITIONS[current.status]:
        raise DeploymentError(
            f"{current.deploy_id} is {current.status}; it cannot become {status} "
            f"(allowed: {', '.join(TRANSITIONS[current.status]) or 'none, it is final'})"
        )
    record = dataclasses.replace(current, revision=current.revision + 1, updated_at=now(), **changes)
    _append(project, record)
    return record
