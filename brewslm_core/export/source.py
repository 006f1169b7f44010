"""What an export starts from: a finished run's folder (plan.json + adapter/), read without
training code, and the lineage of the data it was trained on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..project import Project

# The same rule as brewslm_core.predict's LoadedRun.is_causal_lm, read from the plan alone.
GENERATIVE_PROFILES = ("seq2seq", "alignment", "rag")
ENCODER_PROFILES = ("classification", "safety", "qa", "structured_extraction")
GENERATIVE_MODES = ("generative", "field_match")  # qa / extraction runs trained as a causal LM


class ExportError(RuntimeError):
    """An export cannot be made; ``reason_code`` is the RunEvent code it is recorded under."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


@dataclass(frozen=True)
class RunSource:
    project: Project
    run_id: str
    run_dir: Path
    plan: dict[str, Any]
    task_profile: str
    weights_dir: Path  # the run's adapter/ folder (a LoRA adapter or a full model)
    base_model_path: Path
    is_lora: bool
    kind: str  # causal_lm | encoder | other

    @property
    def lora_rank(self) -> int | None:
        if not self.is_lora:
            return None
        cfg = json.loads((self.weights_dir / "adapter_config.json").read_text(encoding="utf-8"))
        ranks = [int(cfg.get("r") or 0), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())]
        return max(ranks)


def _kind(plan: dict[str, Any]) -> str:
    """causal_lm | encoder | other (audio, vision-language: adapter/hf only)."""
    profile = plan.get("task_profile")
    mode = (plan.get("handler_state") or {}).get("mode")
    if profile in GENERATIVE_PROFILES:
        return "causal_lm"
    if profile in ("qa", "structured_extraction") and mode in GENERATIVE_MODES:
        return "causal_lm"
    if profile in ENCODER_PROFILES:
        return "encoder"
    return "other"


def read_run(project: Project, run_id: str) -> RunSource:
    """The run's plan and weights; ExportError(export_artifact_missing) when they are not there."""
    run_dir = project.run_dir(run_id)
    plan_path = run_dir / "plan.json"
    if not plan_path.is_file():
        known = sorted(p.name for p in project.runs_dir.iterdir() if (p / "plan.json").is_file())
        raise ExportError(
            "export_artifact_missing",
            f"run {run_id!r} has no plan.json under {run_dir}; runs with a plan: "
            f"{', '.join(known) or 'none'} (train one with `brewslm train run PROJECT`)",
        )
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    weights = run_dir / "adapter"
    is_lora = (weights / "adapter_config.json").is_file()
    has_full = (weights / "config.json").is_file() and any(weights.glob("*.safetensors"))
    if not (is_lora or has_full):
        raise ExportError(
            "export_artifact_missing",
            f"run {run_id} has no trained weights in {weights} (no adapter_config.json or "
            "config.json + safetensors): the run did not finish; resume or re-train it",
        )
    base = Path(plan.get("base_model_path") or "")
    if is_lora and not (base / "config.json").is_file():
        raise ExportError(
            "export_artifact_missing",
            f"run {run_id}'s base model folder {base} is missing; convert the defaults again "
            "with `brewslm models prepare` (or restore the folder) and retry",
        )
    profile = str(plan.get("task_profile") or "")
    return RunSource(
        project=project,
        run_id=run_id,
        run_dir=run_dir,
        plan=plan,
        task_profile=profile,
        weights_dir=weights,
        base_model_path=base,
        is_lora=is_lora,
        kind=_kind(plan),
    )


def lineage(project: Project, source: RunSource) -> dict[str, Any]:
    """The prepared manifest's sha256 and the import config_ids the run was trained on.

    ``train_project`` writes them into the run's plan (``manifest_sha256``/``config_ids``/
    ``import_ids``, the manifest as it read it). Runs from before that (or trained on rows passed
    in directly) fall back to the project's current manifest, which is only the run's data when
    the manifest is older than the run: ``source``, ``note`` and ``manifest_newer_than_run`` say so.
    """
    plan = source.plan
    if plan.get("manifest_sha256"):
        return {
            "source": "plan",
            "manifest_sha256": plan["manifest_sha256"],
            "config_ids": list(plan.get("config_ids") or []),
            "import_ids": list(plan.get("import_ids") or []),
            "manifest_newer_than_run": False,
        }
    path = project.manifest_path
    if not path.is_file():
        return {
            "source": "none",
            "manifest_sha256": None,
            "config_ids": [],
            "import_ids": [],
            "manifest_newer_than_run": False,
            "note": "no prepared manifest in the project: the run was trained on rows passed in directly",
        }
    raw = path.read_bytes()
    data = json.loads(raw)
    src = data.get("source") or {}
    newer = path.stat().st_mtime > (source.run_dir / "plan.json").stat().st_mtime
    out: dict[str, Any] = {
        "source": "project_manifest",
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "manifest_created_at": data.get("created_at"),
        "config_ids": list(src.get("config_ids") or []),
        "import_ids": list(src.get("import_ids") or []),
        "manifest_newer_than_run": newer,
    }
    out["note"] = (
        "the run's plan.json does not record its manifest (a run from before lineage was recorded): "
        "taken from the project's current prepared/manifest.json"
    )
    if newer:
        out["note"] += ", which was rewritten after this run started: it may not be the run's data"
    return out
