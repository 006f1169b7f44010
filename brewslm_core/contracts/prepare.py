"""The prepared-dataset manifest: the single source of truth for every stage after Prepare.

``Manifest`` is a frozen record of what Prepare wrote (files with sha256 + row counts, task
profile, scoring mode, label set, split policy, planned base model, token statistics and the
supervision audit). Later stages never open data paths themselves: they call
``Manifest.load(project)`` and ``manifest.iter_split(project, "train")``, which check every byte
against the manifest first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Contract, contract

if TYPE_CHECKING:
    from ..project import Project

MANIFEST_SCHEMA_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "eval", "gold")

# How Evaluate scores each task profile. structured_extraction is resolved per shape by Prepare.
SCORING_MODES: dict[str, str] = {
    "classification": "label_match",
    "safety": "label_match",
    "qa": "span_f1",
    "structured_extraction": "span_set",
    "rag": "faithfulness",
    "alignment": "preference_margin",
    "seq2seq": "bleu_rouge",
    "vision_language": "exact_match",
    "audio_transcription": "wer",
}


class ManifestError(RuntimeError):
    """The manifest or one of its files is missing, changed or unreadable.

    The message names the file and says to re-run prepare.
    """


def file_sha256_and_rows(path: Path) -> tuple[str, int]:
    """sha256 (hex) of a file's bytes and its number of lines, in one streaming pass."""
    digest = hashlib.sha256()
    rows = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            rows += chunk.count(b"\n")
    return digest.hexdigest(), rows


@contract
class SplitFile(Contract):
    path: str  # relative to the project root, POSIX separators
    sha256: str
    rows: int


@contract
class OutputSchema(Contract):
    scoring_mode: str
    target_field: str  # the record key a model must produce ("label", "answers", "messages", …)


@contract
class TokenStats(Contract):
    """Token lengths of the full model input (prompt + target) under the planned tokenizer."""

    tokenizer: str
    rows: int
    p50: int
    p95: int
    max: int
    over_max_length: int  # rows longer than the planned max_length (they get truncated)


@contract
class SupervisionAudit(Contract):
    """Rows whose training signal would be lost at the planned max_length, counted by reason."""

    max_length: int
    rows_checked: int
    rows_affected: int
    by_reason: dict[str, int]
    examples: tuple[dict[str, Any], ...]  # a few {split, import_id, row_index, reason}


@contract
class Manifest(Contract):
    schema_version: int
    created_at: str
    task_profile: str
    shapes: tuple[str, ...]
    output_schema: OutputSchema
    label_set: tuple[str, ...]  # classification/safety; empty otherwise
    counts: dict[str, int]  # rows per split: train, eval, gold
    label_counts: dict[str, dict[str, int]]  # split -> label -> rows (label tasks only)
    excluded: dict[str, int]  # rows left out, by reason
    files: dict[str, SplitFile]  # split -> file
    source: dict[str, Any]  # rows_from ("cleaned"|"committed"), config_ids, import_ids, sha256
    seed: int
    split_policy: dict[str, Any]
    base_model: dict[str, Any]  # requested, name, family, kind
    max_length: int
    token_stats: TokenStats | None
    supervision_audit: SupervisionAudit | None

    # ---- (de)serialisation ----------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version")
        if version != MANIFEST_SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema version {version!r} is not {MANIFEST_SCHEMA_VERSION}; "
                "re-run prepare (`brewslm prepare PROJECT`) to rebuild it"
            )
        audit = data.get("supervision_audit")
        stats = data.get("token_stats")
        return cls(
            schema_version=version,
            created_at=data["created_at"],
            task_profile=data["task_profile"],
            shapes=tuple(data["shapes"]),
            output_schema=OutputSchema(**data["output_schema"]),
            label_set=tuple(data["label_set"]),
            counts=dict(data["counts"]),
            label_counts={k: dict(v) for k, v in data["label_counts"].items()},
            excluded=dict(data["excluded"]),
            files={k: SplitFile(**v) for k, v in data["files"].items()},
            source=dict(data["source"]),
            seed=int(data["seed"]),
            split_policy=dict(data["split_policy"]),
            base_model=dict(data["base_model"]),
            max_length=int(data["max_length"]),
            token_stats=TokenStats(**stats) if stats else None,
            supervision_audit=(
                SupervisionAudit(**{**audit, "examples": tuple(audit["examples"])})
                if audit
                else None
            ),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def load(cls, project: Project, *, verify: bool = True) -> Manifest:
        """Read ``prepared/manifest.json``; by default also verify every file it lists."""
        path = project.manifest_path
        if not path.is_file():
            raise ManifestError(
                f"no manifest at {path}: run prepare first (`brewslm prepare {project.root}` "
                "or brewslm_core.prepare.prepare(project))"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls.from_dict(data)
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(
                f"{path} is not a valid manifest ({type(exc).__name__}: {exc}); re-run prepare"
            ) from exc
        if verify:
            manifest.verify(project)
        return manifest

    # ---- verification and reading -------------------------------------------------------
    def verify_file(self, project: Project, split: str) -> Path:
        """Check one split file's bytes and row count; return its absolute path."""
        if split not in self.files:
            known = ", ".join(sorted(self.files)) or "none"
            raise ManifestError(
                f"split {split!r} is not in this manifest (it has: {known}); "
                "gold exists only when a gold import was committed"
            )
        entry = self.files[split]
        path = project.root / entry.path
        rerun = f"re-run prepare (`brewslm prepare {project.root}`)"
        if not path.is_file():
            raise ManifestError(f"prepared file {entry.path} is missing; {rerun}")
        sha, rows = file_sha256_and_rows(path)
        if sha != entry.sha256 or rows != entry.rows:
            raise ManifestError(
                f"prepared file {entry.path} changed since prepare (sha256 or row count differs: "
                f"{rows} rows, manifest says {entry.rows}); {rerun}"
            )
        return path

    def verify(self, project: Project) -> None:
        for split in self.files:
            self.verify_file(project, split)

    def iter_split(self, project: Project, split: str) -> Iterator[dict[str, Any]]:
        """Verify the split's file, then yield its rows (dicts with task_profile + record)."""
        path = self.verify_file(project, split)
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def read_split(self, project: Project, split: str) -> list[dict[str, Any]]:
        return list(self.iter_split(project, split))
