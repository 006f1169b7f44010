"""The user's registry of project directories: ``<user config dir>/brewslm/projects.json``.

``Project.create`` and ``Project.open`` register; the REST extension maps a project id to a
directory only through this file, so a request never names a path. ``BREWSLM_CONFIG_DIR``
moves the folder (tests, shared machines).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import atomic_write_json
from .locks import file_lock

REGISTRY_NAME = "projects.json"


def config_dir() -> Path:
    override = os.environ.get("BREWSLM_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "brewslm"


def registry_path() -> Path:
    return config_dir() / REGISTRY_NAME


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("projects", {}) if isinstance(data, dict) else {}


def registered() -> dict[str, dict[str, Any]]:
    """project id (str) -> {id, name, root, registered_at}, only directories still projects."""
    return {pid: entry for pid, entry in _read(registry_path()).items()
            if (Path(entry.get("root", "")) / "brewslm.toml").is_file()}


def register(project_id: int, name: str, root: Path) -> None:
    """Add or refresh one entry; entries whose directory is gone are dropped on the way."""
    path = registry_path()
    with file_lock(path.with_name(".projects.lock")):
        entries = {pid: e for pid, e in _read(path).items()
                   if (Path(e.get("root", "")) / "brewslm.toml").is_file()}
        entry = {"id": str(project_id), "name": name, "root": str(root)}
        old = entries.get(str(project_id), {})
        if {k: old.get(k) for k in entry} == entry:
            if len(entries) == len(_read(path)):
                return  # unchanged: do not rewrite the file on every open
        entries[str(project_id)] = {**entry, "registered_at": datetime.now(UTC).isoformat()}
        atomic_write_json(path, {"projects": entries})


def lookup(project_id: str) -> Path | None:
    entry = registered().get(str(project_id))
    return Path(entry["root"]) if entry else None
