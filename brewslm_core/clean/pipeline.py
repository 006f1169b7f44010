"""The clean run: committed rows in, cleaned rows + per-document metadata + chunks + report out.

Order of steps for each committed row (each one counts what it changed or removed, by reason):

1. normalise the record's human text (markup/entities, NFKC, whitespace) and scan it for PII,
   masking under the ``mask`` policy (see ``fields``);
2. remove: ``pii_unmaskable`` (mask policy, a finding straddles an offset), ``pii`` (drop
   policy), ``exact_duplicate`` (same normalised text as an earlier row of the same shape),
   ``near_duplicate`` (MinHash/LSH estimate >= threshold, within the same shape);
3. after all rows: ``low_quality`` outliers (score < min_quality), unless they exceed the cap
   (then none is removed and a ``cleaning_outlier_threshold_exceeded`` warning is recorded);
4. chunk the kept documents into token windows for retrieval.

rows.jsonl keeps the committed line schema with the cleaned ``record``; its ``text_hash`` is
recomputed on the cleaned record (``contracts.shapes.text_hash``) and the committed one is kept as
``clean.source_text_hash``.

Under the ``block`` policy any PII finding blocks the dataset: report.json says ``blocked``,
rows.jsonl / chunks.jsonl are removed, and a ``cleaning_pii_block`` event is recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..common import atomic_file, atomic_write_json, file_lock
from ..contracts.base import Contract, contract
from ..contracts.shapes import text_hash
from ..mapping import read_committed, read_imports
from ..project import Project
from .config import CleanConfig
from .quality import guess_language, quality
from .steps import STEPS, Change, Doc, Drop
from .steps.outliers import decide as decide_outliers

ROWS_NAME = "rows.jsonl"
METADATA_NAME = "metadata.jsonl"
CHUNKS_NAME = "chunks.jsonl"
REPORT_NAME = "report.json"
_TICK = 500  # rows between progress/cancel checks


@contract
class CleanReport(Contract):
    input_sha256: str  # of the committed synthetic rows this report was made from
    input_rows: int
    kept_rows: int
    removed_rows: int
    removed_by_reason: dict[str, int]
    changed_by_step: dict[str, int]  # rows a step changed: html, unicode, whitespace, pii_mask
    pii_policy: str
    pii_by_type: dict[str, int]  # findings per type
    pii_docs: int  # rows with at least one finding
    blocked: bool  # block policy and PII found: Prepare must refuse
    outliers: dict[str, Any]  # flagged, removed, min_quality, cap_fraction, threshold_exceeded
    offsets: dict[str, int]  # rows with offsets: remapped / kept_unedited
    quality_histogram: dict[str, list[float]]  # edges (11), counts (10)
    languages: dict[str, int]
    chunks: int
    outputs: dict[str, str]  # name -> path relative to the project root
    config: dict[str, Any]
    event_ids: list[int]
    created_at: str
    duration_s: float


class CleanBlocked(RuntimeError):
    """Raised by ``require_current`` when the last clean blocked the dataset."""


# ---- input fingerprint and report lookup ---------------------------------------------------
def input_fingerprint(project: Project) -> tuple[str, int]:
    """(sha256 over the committed bytes of synthetic.jsonl, committed row count)."""
    digest = hashlib.sha256()
    rows = 0
    imports = read_imports(project)
    if imports:
        with open(project.synthetic_path, "rb") as fh:
            for imp in imports:
                fh.seek(imp["byte_start"])
                left = imp["byte_end"] - imp["byte_start"]
                while left > 0:
                    block = fh.read(min(left, 1 << 20))
                    if not block:
                        break
                    digest.update(block)
                    left -= len(block)
                rows += int(imp.get("rows", 0))
    return digest.hexdigest(), rows


def load_report(project: Project) -> CleanReport | None:
    path = project.cleaned_dir / REPORT_NAME
    if not path.is_file():
        return None
    return CleanReport(**json.loads(path.read_text(encoding="utf-8")))


def current_report(project: Project) -> CleanReport | None:
    """The last clean report if it was made from the rows committed now, else None (stale)."""
    report = load_report(project)
    if report is None or report.input_sha256 != input_fingerprint(project)[0]:
        return None
    return report


def require_current(project: Project) -> CleanReport:
    """For Prepare: the current, unblocked report, or an error saying what to do."""
    report = current_report(project)
    if report is None:
        raise FileNotFoundError(
            "no current clean for the committed rows (never run, or rows were committed since): "
            "run `brewslm clean PROJECT` or brewslm_core.clean.clean(project)"
        )
    if report.blocked:
        raise CleanBlocked(
            f"the clean blocked this dataset: PII found {report.pii_by_type} under policy 'block'; "
            "remove the PII at the source, or re-run clean with pii_policy='mask' or 'drop'"
        )
    return report


# ---- the run ---------------------------------------------------------------------------
def _histogram(scores: list[float]) -> dict[str, list[float]]:
    edges = [round(i / 10, 1) for i in range(11)]
    counts = [0] * 10
    for s in scores:
        counts[min(9, int(s * 10))] += 1
    return {"edges": edges, "counts": [float(c) for c in counts]}



class _Writer:
    """Write a JSONL file under a temporary name; ``commit`` fsyncs and renames it into place."""

    def __init__(self, path: Path) -> None:
        self._cm = atomic_file(path, "w")
        self.fh = self._cm.__enter__()
        self.tmp = Path(self.fh.name)

    def write(self, obj: dict[str, Any]) -> None:
        self.fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def abort(self) -> None:
        if not self.fh.closed:
            self._cm.__exit__(RuntimeError, RuntimeError("aborted"), None)


def clean(project: Project, config: CleanConfig | None = None, ctx: Any = None) -> CleanReport:
    """Clean the committed rows; writes rows/metadata/chunks/report under project.cleaned_dir."""
    from ..tasks import NullContext

    cfg = config or CleanConfig()
    ctx = ctx or NullContext()
    with file_lock(project.cleaned_dir / ".clean.lock"):
        return _run(project, cfg, ctx)


def _run(project: Project, cfg: CleanConfig, ctx: Any) -> CleanReport:
    t0 = time.perf_counter()
    input_sha, total = input_fingerprint(project)
    steps = [step for step in (STEPS.get(name)(cfg) for name in cfg.steps) if step is not None]
    removed: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    pii_by_type: Counter[str] = Counter()
    offsets: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    pii_docs = 0
    n_rows = 0
    scores: list[float] = []
    # Memory stays small: metadata goes to a first-pass file at once; a kept row is held only
    # as its finished JSON line, its document text and its quality score.
    # (row number, finished JSON line, document text, quality score, "import:row", text_hash)
    kept: list[tuple[int, str, str, float | None, str, str]] = []
    outdir = project.cleaned_dir
    pass1 = _Writer(outdir / "metadata.pass1.jsonl")
    try:
        ctx.progress(0, total, "cleaning rows")
        for n_rows, row in enumerate(read_committed(project), start=1):
            if n_rows % _TICK == 0:
                ctx.check_cancelled()
                ctx.progress(n_rows, total, "cleaning rows")
            doc = Doc(row)
            actions: list[str] = []
            dropped: Drop | None = None
            for step in steps:  # keep / a change / (drop, reason): the first drop ends the row
                verdict = step(doc)
                if isinstance(verdict, Change):
                    actions += verdict.actions
                elif isinstance(verdict, Drop):
                    dropped = verdict
                    break
            changed.update(actions)
            if doc.offsets:
                offsets[doc.offsets] += 1
            if doc.findings:
                pii_docs += 1
                pii_by_type.update(f["type"] for f in doc.findings)
            meta, q = _describe(doc, actions, cfg)
            if q is not None:
                scores.append(q["score"])  # type: ignore[arg-type]
            languages[meta["language"] or "unknown"] += 1
            if dropped is not None:
                meta["kept"], meta["removed_reason"] = False, dropped.reason
                meta["duplicate_of"] = dropped.duplicate_of
                meta.update(dropped.details)
                removed[dropped.reason] += 1
            else:
                row_out = {**row, "text_hash": meta["text_hash"], "clean": {
                    "source_text_hash": meta["source_text_hash"],
                    "quality": q["score"] if q else None,
                    "pii": sorted({f["type"] for f in doc.findings}),
                    "language": meta["language"],
                    "actions": actions,
                }}
                kept.append((n_rows - 1, json.dumps(row_out, ensure_ascii=False), doc.text,
                             q["score"] if q else None, doc.doc_id,  # type: ignore[arg-type]
                             meta["text_hash"]))
            pass1.write(meta)
        pass1.fh.flush()
        ctx.check_cancelled()
        ctx.progress(n_rows, total, "outliers")

        # Outliers: decided over the whole set, because the cap is a share of all rows.
        outliers, flagged_rows, drop_rows = decide_outliers([(k[0], k[3]) for k in kept], n_rows, cfg)
        exceeded = outliers["threshold_exceeded"]
        if drop_rows:
            kept = [k for k in kept if k[0] not in drop_rows]
            removed["low_quality"] += len(drop_rows)

        blocked = bool(cfg.pii and cfg.pii_policy == "block" and pii_docs)
        chunk_spans_: list[list[tuple[int, int, int]]] = []
        if cfg.chunk and kept and not blocked:
            from .chunk import chunk_spans

            ctx.progress(n_rows, total, "chunking")
            chunk_spans_ = chunk_spans([k[2] for k in kept], cfg.chunk_tokens, cfg.chunk_overlap)
        ctx.check_cancelled()
        ctx.progress(n_rows, total, "writing")

        # Write everything under temporary names; report.json goes last and marks completion.
        writers = {name: _Writer(outdir / name) for name in (METADATA_NAME, ROWS_NAME, CHUNKS_NAME)}
        n_chunks = 0
        try:
            with open(pass1.tmp, encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    if i in flagged_rows:
                        meta = json.loads(line)
                        meta["outlier"] = True
                        if i in drop_rows:
                            meta["kept"], meta["removed_reason"] = False, "low_quality"
                        line = json.dumps(meta, ensure_ascii=False) + "\n"
                    writers[METADATA_NAME].fh.write(line)
            if not blocked:
                for i, (_, line, doc, _, doc_id, thash) in enumerate(kept):
                    writers[ROWS_NAME].fh.write(line + "\n")
                    for j, (a, b, ntok) in enumerate(chunk_spans_[i] if chunk_spans_ else []):
                        import_id, row_index = doc_id.rsplit(":", 1)
                        writers[CHUNKS_NAME].write({
                            "chunk_id": f"{doc_id}:{j}", "import_id": import_id,
                            "row_index": int(row_index), "text_hash": thash, "chunk_index": j,
                            "start_char": a, "end_char": b, "n_tokens": ntok, "text": doc[a:b],
                        })
                        n_chunks += 1
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
    finally:
        pass1.abort()
    # From here until the new report lands, no report: a crash in between leaves "not current"
    # rather than an old report describing new files.
    (outdir / REPORT_NAME).unlink(missing_ok=True)
    writers[METADATA_NAME].commit()
    if blocked:
        for name in (ROWS_NAME, CHUNKS_NAME):
            writers[name].abort()
            (outdir / name).unlink(missing_ok=True)  # nothing downstream may read stale rows
    else:
        writers[ROWS_NAME].commit()
        writers[CHUNKS_NAME].commit()

    event_ids = _emit_events(project, cfg, blocked, exceeded, outliers, pii_by_type, pii_docs,
                             removed, n_rows, len(kept))
    rel = {name.split(".")[0]: str((outdir / name).relative_to(project.root))
           for name in (ROWS_NAME, METADATA_NAME, CHUNKS_NAME, REPORT_NAME)}
    if blocked:
        rel.pop("rows"), rel.pop("chunks")
    report = CleanReport(
        input_sha256=input_sha,
        input_rows=n_rows,
        kept_rows=0 if blocked else len(kept),
        removed_rows=sum(removed.values()),
        removed_by_reason=dict(removed),
        changed_by_step=dict(changed),
        pii_policy=cfg.pii_policy if cfg.pii else "off",
        pii_by_type=dict(pii_by_type),
        pii_docs=pii_docs,
        blocked=blocked,
        outliers=outliers,
        offsets=dict(offsets),
        quality_histogram=_histogram(scores),
        languages=dict(languages),
        chunks=n_chunks,
        outputs=rel,
        config=cfg.to_dict(),
        event_ids=event_ids,
        created_at=datetime.now(UTC).isoformat(),
        duration_s=round(time.perf_counter() - t0, 3),
    )
    atomic_write_json(outdir / REPORT_NAME, report.to_dict())
    ctx.progress(n_rows, total, "done")
    return report


def _describe(doc: Doc, actions: list[str], cfg: CleanConfig) -> tuple[dict[str, Any], dict | None]:
    """The row's metadata line (before any drop is recorded) and its quality (None when off)."""
    q = quality(doc.text) if cfg.quality else None
    lang, script = guess_language(doc.text)
    row = doc.row
    meta: dict[str, Any] = {
        "import_id": row["import_id"],
        "row_index": row["row_index"],
        "shape": doc.shape,
        "source_text_hash": row.get("text_hash"),
        "text_hash": text_hash(doc.shape, doc.record),
        "kept": True,
        "removed_reason": None,
        "duplicate_of": None,
        "pii": doc.findings,
        "quality": q,
        "language": lang,
        "script": script,
        "actions": actions,
        "offsets": doc.offsets,
        "n_chars": len(doc.text),
    }
    return meta, q


def _emit_events(project: Project, cfg: CleanConfig, blocked: bool, exceeded: bool,
                 outliers: dict[str, Any], pii_by_type: Counter[str], pii_docs: int,
                 removed: Counter[str], n_in: int, n_kept: int) -> list[int]:
    ids = []
    if exceeded:
        ev = project.events.append(
            stage="cleaning", severity="warning", reason_code="cleaning_outlier_threshold_exceeded",
            summary=(f"{outliers['flagged']} of {n_in} rows scored below {cfg.min_quality}; "
                     f"cap is {outliers['cap_rows']} ({cfg.max_outlier_fraction:.0%}), none removed"),
            payload=dict(outliers),
        )
        ids.append(ev.id)
    if blocked:
        ev = project.events.append(
            stage="cleaning", severity="error", reason_code="cleaning_pii_block",
            summary=f"PII in {pii_docs} of {n_in} rows; dataset blocked (policy 'block')",
            payload={"pii_by_type": dict(pii_by_type), "pii_docs": pii_docs, "input_rows": n_in},
        )
        ids.append(ev.id)
    else:
        ev = project.events.append(
            stage="cleaning", severity="info",
            summary=f"cleaned {n_in} rows: kept {n_kept}, removed {n_in - n_kept}",
            payload={"input_rows": n_in, "kept_rows": n_kept, "removed_by_reason": dict(removed),
                     "pii_by_type": dict(pii_by_type), "pii_policy": cfg.pii_policy,
                     "outliers": dict(outliers)},
        )
        ids.append(ev.id)
    return ids


# ---- background task ---------------------------------------------------------------------
def clean_task(ctx: Any, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Task entry point (``brewslm_core.clean.pipeline:clean_task``)."""
    return clean(ctx.project, CleanConfig.from_dict(config), ctx).to_dict()


def start_clean(project: Project, config: CleanConfig | dict[str, Any] | None = None,
                runner: str = "thread") -> str:
    """Start ``clean`` as a background task; returns its task_id at once (poll tasks.status)."""
    from .. import tasks

    if isinstance(config, dict) or config is None:
        config = CleanConfig.from_dict(config)
    return tasks.start(project, "brewslm_core.clean.pipeline:clean_task",
                       {"config": config.to_dict()}, kind="clean", runner=runner)
