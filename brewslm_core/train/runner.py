"""Train from the project's manifest, inline or as a background task.

result = train_project(project, {"max_steps": 50})            # inline
task_id = tasks.start(project, TASK_TARGET, {"config": {...}}, kind="train",
                      runner="process")                        # background
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .engine import TrainResult, train

if TYPE_CHECKING:
    from ..project import Project
    from ..tasks import TaskContext

TASK_TARGET = "brewslm_core.train.runner:train_task"


def config_from_manifest(manifest: Any, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults from the manifest (task profile, base model, max length, seed) + overrides."""
    base = manifest.base_model or {}
    data: dict[str, Any] = {
        "task_profile": manifest.task_profile,
        "base": base.get("requested") or base.get("name") or "auto",
        "max_length": manifest.max_length,
        "seed": manifest.seed,
    }
    data.update(overrides or {})
    if data["task_profile"] != manifest.task_profile:
        raise ValueError(
            f"the manifest is prepared for {manifest.task_profile!r}, not "
            f"{data['task_profile']!r}: re-run prepare with the task profile you want"
        )
    return TrainConfig.from_dict(data)


def train_project(
    project: Project,
    overrides: dict[str, Any] | TrainConfig | None = None,
    *,
    run_id: str | None = None,
    resume: bool = False,
    cancel: Any = None,
    progress: Any = None,
) -> TrainResult:
    """Train on the manifest's train split, scoring on its eval split.

    The run's plan.json records what it was trained on: the sha256 of prepared/manifest.json as
    read here and the manifest's import ``config_ids``/``import_ids`` (export's lineage reads them).
    """
    from ..prepare import Manifest, ManifestError

    raw = project.manifest_path.read_bytes() if project.manifest_path.is_file() else b""
    manifest = Manifest.load(project)
    if project.manifest_path.read_bytes() != raw:
        raise ManifestError(
            f"{project.manifest_path} changed while training was starting (prepare running?): "
            "wait for prepare to finish, then train again"
        )
    lineage = {
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "config_ids": list(manifest.source.get("config_ids") or []),
        "import_ids": list(manifest.source.get("import_ids") or []),
    }
    if isinstance(overrides, TrainConfig):
        config = config_from_manifest(manifest, overrides.to_dict())
    else:
        config = config_from_manifest(manifest, overrides)
    train_rows = list(manifest.iter_split(project, "train"))
    eval_rows = list(manifest.iter_split(project, "eval")) if manifest.counts.get("eval") else []
    return train(
        project, config, train_rows, eval_rows,
        run_id=run_id, resume=resume, cancel=cancel, progress=progress, lineage=lineage,
    )


def train_task(
    ctx: TaskContext,
    *,
    config: dict[str, Any] | None = None,
    run_id: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Task work function: cancel and progress go through the task context.

    The engine has already recorded the run's RunEvent; this maps the outcome onto the task
    state (cancelled, or failed with the run's reason code).
    """
    from ..tasks import TaskCancelled, TaskFailed

    result = train_project(
        ctx.project,
        config,
        run_id=run_id,
        resume=resume,
        cancel=lambda: ctx.cancel_requested,
        progress=ctx.progress,
    )
    if result.status == "cancelled":
        raise TaskCancelled(result.run_id)
    if result.status != "completed":
        raise TaskFailed(result.reason_code, f"{result.run_id}: {result.error}")
    return result.to_dict()
