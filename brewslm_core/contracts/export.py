"""An export bundle: a trained run written out as an artifact other tools load.

``exports/<export_id>/manifest.json`` is the record; ``ExportBundle`` mirrors it plus ``path``.
Deploy reads bundles only through ``brewslm_core.export.load_bundle``.
"""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

EXPORT_FORMATS: tuple[str, ...] = ("adapter", "hf", "gguf", "vllm")
QUANT_STATUSES: tuple[str, ...] = ("available", "unavailable", "failed")
SERVE_KINDS: tuple[str, ...] = ("causal_lm", "encoder")
EXPORT_SCHEMA_VERSION = 1


@contract
class ExportFile(Contract):
    path: str  # relative to the bundle folder, POSIX separators
    size: int
    sha256: str


@contract
class QuantVariant(Contract):
    status: str  # available | unavailable | failed
    reason: str | None
    file: str | None  # relative path of the variant's file inside the bundle


@contract
class ServeSpec(Contract):
    """How to serve the bundle. Paths in ``command`` are relative to the bundle folder (run it
    there) unless they are absolute (a base model outside the bundle)."""

    kind: str  # causal_lm | encoder
    model_dir: str | None
    adapter_dir: str | None
    served_model_name: str
    command: tuple[str, ...]
    env: dict[str, str]
    notes: tuple[str, ...]


@contract
class ExportBundle(Contract):
    schema_version: int
    export_id: str
    format: str
    source_run: str
    task_profile: str
    base_model: dict[str, Any]  # path, and name/family when the plan or manifest names them
    files: tuple[ExportFile, ...]
    quantizations: dict[str, QuantVariant]
    lineage: dict[str, Any]  # manifest_sha256, config_ids, source
    serve: ServeSpec | None
    not_applicable: dict[str, str]  # format -> why this run cannot be exported that way
    created_at: str
    path: str  # the bundle folder (absolute); not stored in manifest.json

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str) -> ExportBundle:
        serve = data.get("serve")
        return cls(
            schema_version=int(data["schema_version"]),
            export_id=data["export_id"],
            format=data["format"],
            source_run=data["source_run"],
            task_profile=data["task_profile"],
            base_model=dict(data["base_model"]),
            files=tuple(ExportFile(**f) for f in data["files"]),
            quantizations={k: QuantVariant(**v) for k, v in data["quantizations"].items()},
            lineage=dict(data["lineage"]),
            serve=(
                ServeSpec(**{**serve, "command": tuple(serve["command"]), "notes": tuple(serve["notes"])})
                if serve
                else None
            ),
            not_applicable=dict(data.get("not_applicable", {})),
            created_at=data["created_at"],
            path=path,
        )

    def manifest_dict(self) -> dict[str, Any]:
        """What manifest.json holds (everything but ``path``)."""
        out = self.to_dict()
        out.pop("path")
        return out
