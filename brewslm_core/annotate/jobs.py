"""Annotation jobs: a queue of committed or eval rows, labels by reviewers, promotion to gold.

A job lives in ``annotations/<job_id>/``: ``job.json`` (what it is), ``items.jsonl`` (the rows
to label, fixed at creation), ``labels.jsonl`` (append-only: one line per submitted label, the
last label of an item wins) and ``promoted.jsonl`` (gold rows made from labelled items). All of
the queue's state is in these files, so it survives a kernel restart. Prepare reads the promoted
rows through ``promoted_rows`` and keeps them apart in the gold split.
"""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..common import atomic_write_json, file_lock
from ..contracts.annotate import LABEL_TYPES, AnnotationItem, AnnotationJob
from ..contracts.prepare import Manifest, ManifestError
from ..contracts.shapes import record_text, text_hash
from ..mapping import read_committed, read_imports
from ..project import Project

SOURCES = ("committed", "eval")


class AnnotationError(ValueError):
    """An annotation request is invalid (unknown job/item, a label outside the set…)."""


def _job_dir(project: Project, job_id: str) -> Path:
    if not job_id.startswith("ann-") or "/" in job_id or ".." in job_id:
        raise AnnotationError(f"{job_id!r} is not an annotation job id (ann-<hex>)")
    path = project.annotations_dir / job_id
    if not (path / "job.json").is_file():
        known = ", ".join(j.job_id for j in list_jobs(project)) or "none"
        raise AnnotationError(f"no annotation job {job_id!r} in {project.root} (jobs: {known})")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                out.append(json.loads(line))
    return out


def _append(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        fh.flush()


def _candidate_rows(project: Project, source: str) -> list[dict[str, Any]]:
    if source == "eval":
        try:
            manifest = Manifest.load(project)
        except ManifestError as exc:
            raise AnnotationError(f"an eval-row job needs a prepared project: {exc}") from exc
        if not manifest.counts.get("eval"):
            raise AnnotationError("the manifest has no eval rows; prepare with an eval fraction")
        return list(manifest.iter_split(project, "eval"))
    gold = [i["import_id"] for i in read_imports(project) if i.get("gold")]
    return [r for r in read_committed(project) if r["import_id"] not in gold]  # gold is labelled


def create_job(project: Project, name: str, *, label_type: str = "classification",
               source: str = "committed", target_rows: int = 50, labels: list[str] | None = None,
               seed: int = 13, actor: str = "system") -> AnnotationJob:
    """Pick ``target_rows`` rows (seeded) from the committed rows or the eval split into a queue."""
    if label_type not in LABEL_TYPES:
        raise AnnotationError(f"label_type must be one of {list(LABEL_TYPES)}, not {label_type!r}")
    if source not in SOURCES:
        raise AnnotationError(f"source must be one of {list(SOURCES)}, not {source!r}")
    if not isinstance(target_rows, int) or target_rows < 1:
        raise AnnotationError(f"target_rows must be a positive int, got {target_rows!r}")
    rows = _candidate_rows(project, source)
    if not rows:
        raise AnnotationError(f"there are no {source} rows to annotate: commit an import first")
    label_set = list(labels or [])
    if not label_set:
        seen = sorted({str(r["record"]["label"]) for r in rows if "label" in r.get("record", {})})
        label_set = seen
    if not label_set:
        raise AnnotationError("give the labels to choose from (labels=[...] / --labels a,b)")
    picked = random.Random(seed).sample(rows, min(target_rows, len(rows)))
    job_id = f"ann-{secrets.token_hex(5)}"
    folder = project.annotations_dir / job_id
    folder.mkdir(parents=True)
    with open(folder / "items.jsonl", "w", encoding="utf-8") as fh:
        for i, row in enumerate(picked):
            record = row["record"]
            item = {"item_id": i, "text": record_text(row["shape"], record), "shape": row["shape"],
                    "suggested": record.get("label"), "import_id": row.get("import_id"),
                    "text_hash": row.get("text_hash")}
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    meta = {"job_id": job_id, "name": name, "label_type": label_type, "source": source,
            "target_rows": len(picked), "labels": label_set,
            "created_at": datetime.now(UTC).isoformat(), "created_by": actor}
    atomic_write_json(folder / "job.json", meta)
    project.events.append(
        stage="ingestion", severity="info", reason_code="annotation_job_created", actor=actor,
        run_id=job_id, summary=f"annotation job {name!r}: {len(picked)} {source} rows to label",
        payload={"job_id": job_id, "name": name, "label_type": label_type,
                 "target_rows": len(picked), "source": source, "labels": label_set},
    )
    return job(project, job_id)


def _latest_labels(folder: Path) -> dict[int, dict[str, Any]]:
    latest: dict[int, dict[str, Any]] = {}
    for line in _lines(folder / "labels.jsonl"):
        latest[int(line["item_id"])] = line
    return latest


def job(project: Project, job_id: str) -> AnnotationJob:
    folder = _job_dir(project, job_id)
    meta = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    promoted = {int(r["item_id"]) for r in _lines(folder / "promoted.jsonl")}
    return AnnotationJob(
        job_id=meta["job_id"], name=meta["name"], label_type=meta["label_type"],
        source=meta["source"], target_rows=int(meta["target_rows"]), labels=tuple(meta["labels"]),
        labelled=len(_latest_labels(folder)), promoted=len(promoted), created_at=meta["created_at"],
    )


def list_jobs(project: Project) -> list[AnnotationJob]:
    root = project.annotations_dir
    if not root.is_dir():
        return []
    return [job(project, p.name) for p in sorted(root.iterdir()) if (p / "job.json").is_file()]


def items(project: Project, job_id: str, *, pending_only: bool = False) -> list[AnnotationItem]:
    folder = _job_dir(project, job_id)
    latest = _latest_labels(folder)
    out = []
    for it in _lines(folder / "items.jsonl"):
        done = latest.get(int(it["item_id"]))
        if pending_only and done is not None:
            continue
        out.append(AnnotationItem(item_id=int(it["item_id"]), text=it["text"],
                                  suggested=it.get("suggested"),
                                  label=done["label"] if done else None,
                                  actor=done["actor"] if done else None))
    return out


def submit_label(project: Project, job_id: str, item_id: int, label: str, *,
                 actor: str) -> AnnotationItem:
    """Record one reviewer's label for one item (a later label for the same item wins)."""
    folder = _job_dir(project, job_id)
    meta = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    if label not in meta["labels"]:
        raise AnnotationError(f"label {label!r} is not in job {job_id}'s set {meta['labels']}")
    if not isinstance(actor, str) or not actor.strip():
        raise AnnotationError("a label needs the reviewer's name as actor")
    known = {int(it["item_id"]): it for it in _lines(folder / "items.jsonl")}
    if item_id not in known:
        raise AnnotationError(f"job {job_id} has no item {item_id} (items 0..{len(known) - 1})")
    with file_lock(folder / ".labels.lock"):
        _append(folder / "labels.jsonl", {"item_id": item_id, "label": label, "actor": actor,
                                          "ts": datetime.now(UTC).isoformat()})
    project.events.append(
        stage="ingestion", severity="info", reason_code="annotation_label_submitted", actor=actor,
        run_id=job_id, summary=f"{actor} labelled item {item_id} of {job_id} as {label!r}",
        payload={"job_id": job_id, "item_id": item_id, "label": label,
                 "suggested": known[item_id].get("suggested")},
    )
    return AnnotationItem(item_id=item_id, text=known[item_id]["text"],
                          suggested=known[item_id].get("suggested"), label=label, actor=actor)


def promote(project: Project, job_id: str, *, actor: str = "system") -> int:
    """Turn labelled, not yet promoted items into gold rows; returns how many were promoted."""
    folder = _job_dir(project, job_id)
    meta = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    with file_lock(folder / ".labels.lock"):
        done = {int(r["item_id"]) for r in _lines(folder / "promoted.jsonl")}
        latest = _latest_labels(folder)
        fresh = 0
        for it in _lines(folder / "items.jsonl"):
            iid = int(it["item_id"])
            if iid in done or iid not in latest:
                continue
            record = {"text": it["text"], "label": latest[iid]["label"]}
            _append(folder / "promoted.jsonl", {
                "item_id": iid, "import_id": job_id, "row_index": iid, "shape": "classification",
                "task_profile": "classification", "config_id": f"annotation-{job_id}",
                "text_hash": text_hash("classification", record), "record": record,
                "reviewer": latest[iid]["actor"],
            })
            fresh += 1
    if fresh:
        project.events.append(
            stage="ingestion", severity="info", reason_code="annotation_rows_promoted",
            actor=actor, run_id=job_id,
            summary=f"{fresh} labelled rows of {meta['name']!r} promoted to the gold set",
            payload={"job_id": job_id, "rows": fresh, "total_promoted": len(done) + fresh,
                     "path": str((folder / "promoted.jsonl").relative_to(project.root))},
        )
    return fresh


def promoted_rows(project: Project) -> list[dict[str, Any]]:
    """Every promoted gold row of every job, as committed-row dicts (for Prepare's gold split)."""
    root = project.annotations_dir
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        for row in _lines(folder / "promoted.jsonl"):
            out.append({k: row[k] for k in ("import_id", "row_index", "shape", "task_profile",
                                             "config_id", "text_hash", "record")})
    return out
