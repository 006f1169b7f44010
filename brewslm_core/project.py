"""A project is one directory. This module is the only place that knows its paths."""

from __future__ import annotations

import copy
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import atomic_write_text

if TYPE_CHECKING:
    from .events.store import EventStore

CONFIG_NAME = "brewslm.toml"

DEFAULT_CONFIG: dict[str, Any] = {
    "project": {"name": "", "id": 0},
    "model": {"base": "auto"},  # "auto" picks the offline default for the task profile
    "runtime": {"profile": "cpu-small", "seed": 13},
    "gates": {"policy": "strict"},  # strict | fail-open
    "security": {"allowed_roots": []},  # empty: any path; else locators must resolve inside
}


class ProjectError(Exception):
    """A project directory is missing, malformed, or would be overwritten."""


def _toml_dumps(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``over`` laid on a deep copy of ``base`` (never shares nested tables)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Project:
    root: Path
    config: dict[str, Any] = field(default_factory=dict)

    # ---- life cycle -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], **config: Any) -> Project:
        """Make a new project directory (or adopt an empty one) with the standard layout."""
        root = Path(path).expanduser().resolve()
        if (root / CONFIG_NAME).exists():
            raise ProjectError(f"{root} is already a BrewSLM project; use Project.open()")
        root.mkdir(parents=True, exist_ok=True)
        cfg = _merge(DEFAULT_CONFIG, config)
        cfg["project"]["name"] = cfg["project"]["name"] or root.name
        if not cfg["project"]["id"]:
            # A stable small integer id for the RunEvent project_id column.
            cfg["project"]["id"] = int(hashlib.sha256(str(root).encode()).hexdigest()[:7], 16)
        (root / CONFIG_NAME).write_text(_toml_dumps(cfg), encoding="utf-8")
        project = cls(root=root, config=cfg)
        project.ensure_layout()
        project.register()
        return project

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Project:
        root = Path(path).expanduser().resolve()
        cfg_path = root / CONFIG_NAME
        if not cfg_path.is_file():
            raise ProjectError(
                f"{root} is not a BrewSLM project (no {CONFIG_NAME}); "
                f"create one with Project.create({str(path)!r}) or `brewslm init {path}`"
            )
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProjectError(f"{cfg_path} is not valid TOML: {exc}") from exc
        project = cls(root=root, config=_merge(DEFAULT_CONFIG, cfg))
        project.ensure_layout()
        project.register()
        return project

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], **config: Any) -> Project:
        if (Path(path).expanduser() / CONFIG_NAME).is_file():
            return cls.open(path)
        return cls.create(path, **config)

    def ensure_layout(self) -> None:
        for p in (
            self.raw_dir,
            self.cleaned_dir,
            self.prepared_dir,
            self.runs_dir,
            self.exports_dir,
            self.events_dir,
            self.tasks_dir,
        ):
            p.mkdir(parents=True, exist_ok=True)

    def register(self) -> None:
        """Record this directory in the user's project registry (what the REST API serves).

        A registry that cannot be written (read-only home) never stops a project opening.
        """
        from .common.known_projects import register

        try:
            register(self.id, self.name, self.root)
        except OSError as exc:
            import warnings

            warnings.warn(f"could not register {self.root} in the project registry: {exc}",
                          stacklevel=3)

    def save_config(self) -> None:
        atomic_write_text(self.root / CONFIG_NAME, _toml_dumps(self.config))

    # ---- identity ---------------------------------------------------------------------
    @property
    def id(self) -> int:
        return int(self.config["project"]["id"])

    @property
    def name(self) -> str:
        return str(self.config["project"]["name"])

    # ---- paths (the only place that knows them) ---------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def synthetic_path(self) -> Path:
        """Committed mapped rows, append-only."""
        return self.data_dir / "synthetic.jsonl"

    @property
    def imports_path(self) -> Path:
        """One JSON line per committed import: id, byte range in synthetic.jsonl, config."""
        return self.data_dir / "imports.jsonl"

    @property
    def cleaned_dir(self) -> Path:
        return self.data_dir / "cleaned"

    @property
    def prepared_dir(self) -> Path:
        return self.root / "prepared"

    @property
    def manifest_path(self) -> Path:
        return self.prepared_dir / "manifest.json"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def deployments_dir(self) -> Path:
        """Append-only DeploymentVersion revisions (deploy stage)."""
        return self.root / "deployments"

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def annotations_dir(self) -> Path:
        """Annotation jobs: ``<job_id>/job.json``, ``items.jsonl``, ``labels.jsonl``."""
        return self.root / "annotations"

    def teacher_dir(self, capture_id: str = "") -> Path:
        """A teacher capture (top-k logprobs for distillation); "" = the folder of all of them."""
        return self.root / "teachers" / capture_id if capture_id else self.root / "teachers"

    # ---- services ---------------------------------------------------------------------
    @cached_property
    def events(self) -> EventStore:
        from .events import EventStore

        return EventStore(self.events_dir, project_id=self.id)

    def allowed_roots(self) -> list[Path]:
        roots = self.config.get("security", {}).get("allowed_roots", [])
        return [Path(r).expanduser().resolve() for r in roots]
