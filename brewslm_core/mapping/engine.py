"""dry_run() and commit(): every source row becomes a TransformedRow or a RejectedRow."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..contracts import (
    FORCE_THRESHOLD,
    ROW_REJECT_CODES,
    CommitResult,
    DryRunReport,
    ReasonGroup,
    RejectedRow,
    SentinelRow,
    TransformedRow,
)
from ..contracts.shapes import RECORD_KEYS, check_shape, hash_bytes, task_profile
from ..ingest import Connector, open_connector
from ..introspect import introspect
from .fields import RowReject
from .mappers import MAPPERS, reset_media_cache
from .record_key import record_key
from .store import append_commit, read_committed

if TYPE_CHECKING:
    from ..project import Project


class MappingError(ValueError):
    """The mapping cannot run (unknown shape, no usable field map). Says what to do instead."""


class LowConfidenceError(MappingError):
    """Commit refused: the shape's introspection confidence is below FORCE_THRESHOLD."""

    def __init__(self, message: str, confidence: float) -> None:
        super().__init__(message)
        self.confidence = confidence


def config_id(shape: str, field_map: dict[str, str] | None, options: dict | None) -> str:
    """Stable short id of a mapping: sha256 of its canonical JSON, 12 hex digits."""
    blob = json.dumps({"shape": shape, "field_map": field_map or {}, "options": options or {}},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


# ---- resolving the mapping ----------------------------------------------------------------
def _connector(source: str | Connector, project: Project | None) -> Connector:
    return open_connector(source, project)


def _hypothesis(conn: Connector, shape: str, hyps: list | None = None):
    return next((h for h in (introspect(conn) if hyps is None else hyps) if h.shape == shape),
                None)


def resolve(conn: Connector, shape: str, field_map: dict[str, str] | None,
            options: dict | None, hyps: list | None = None,
            ) -> tuple[dict[str, str], dict[str, Any]]:
    """The field map and options to use: given ones, or the top introspected ones for shape."""
    check_shape(shape)
    if field_map is None:
        hyp = _hypothesis(conn, shape, hyps)
        if hyp is None:
            raise MappingError(
                f"{conn.locator} does not look like {shape!r} to introspection, so there is no "
                f"field map to propose; run `brewslm introspect {conn.locator}` to see the likely "
                "shapes, or pass a field map (--field canonical=source_field)"
            )
        field_map = dict(hyp.mapping.field_map)
        options = {**(hyp.mapping.options or {}), **(options or {})}
    return dict(field_map), dict(options or {})


# ---- mapping rows -------------------------------------------------------------------------
def _check_record(shape: str, record: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in RECORD_KEYS[shape] if k not in record]
    if missing:  # a mapper bug, not a data problem: fail loudly
        raise RuntimeError(f"mapper for {shape!r} produced a record without {missing}")
    return record


def map_rows(conn: Connector, shape: str, field_map: dict[str, str], options: dict[str, Any],
             committed: set[bytes] | None = None) -> Iterator[TransformedRow | RejectedRow]:
    """Map every row of the source, in order. ``committed`` holds digests committed before."""
    mapper = MAPPERS.get(shape)
    reset_media_cache()
    base_dir = getattr(conn, "base_dir", None)
    committed = committed or set()
    first_seen: dict[bytes, int] = {}  # digest -> row index that took it, for the detail
    for index, row in enumerate(conn.load()):
        if isinstance(row, SentinelRow):
            yield RejectedRow(index, "unparseable_row",
                              f"line {row.line_number}: {row.error}", row.raw)
            continue
        if row.get("_extra") and not any(str(v).startswith("_extra") for v in field_map.values()):
            # An unquoted delimiter shifts every later cell: the mapped fields would be wrong.
            yield RejectedRow(index, "ragged_row",
                              f"{len(row['_extra'])} cell(s) beyond the header: "
                              f"{row['_extra']!r}; quote the field or fix the delimiter", row)
            continue
        try:
            record = _check_record(shape, mapper(row, field_map, options, base_dir))
        except RowReject as rej:
            yield RejectedRow(index, rej.reason, rej.detail, row)
            continue
        # Duplicates are judged on the whole record (tools, answers, labels), not its text.
        key = record_key(shape, record)[:16]  # half the digest keeps 1M keys small in memory
        if key in committed:
            yield RejectedRow(index, "duplicate_row",
                              "the same record is already committed in this project", row)
            continue
        if key in first_seen:
            yield RejectedRow(index, "duplicate_row",
                              f"the same record as row {first_seen[key]} of this import", row)
            continue
        first_seen[key] = index
        yield TransformedRow(index, shape, record, hash_bytes(shape, record).hex())


def committed_keys(project: Project | None) -> set[bytes]:
    if project is None:
        return set()
    return {record_key(r["shape"], r["record"])[:16] for r in read_committed(project)}


def dry_run(source: str | Connector, shape: str, field_map: dict[str, str] | None = None,
            options: dict | None = None, *, drop_reasons: Iterable[str] = (),
            sample_size: int = 20, examples_per_reason: int = 5,
            project: Project | None = None, columnar: bool = True) -> DryRunReport:
    """Map the whole source without writing: counts by reason, examples, an accepted sample.

    ``drop_reasons`` only hides those reasons' examples from the rendered report; every count
    stays. With a project, rows already committed there count as duplicate_row. Flat shapes of
    JSON Lines files are judged column-wise (columnar.py, same verdicts); ``columnar=False``
    forces the per-row path.
    """
    dropped = tuple(dict.fromkeys(drop_reasons))
    unknown = [r for r in dropped if r not in ROW_REJECT_CODES]
    if unknown:
        raise MappingError(f"unknown reason code(s) {unknown}; known: {sorted(ROW_REJECT_CODES)}")
    conn = _connector(source, project)
    fmap, opts = resolve(conn, shape, field_map, options)
    committed = committed_keys(project)
    if columnar:
        from .columnar import fast_dry_run

        fast = fast_dry_run(conn, shape, fmap, opts, committed, config=config_id(shape, fmap, opts),
                            dropped=dropped, sample_size=sample_size,
                            examples_per_reason=examples_per_reason)
        if fast is not None:
            return fast
    by_reason: Counter[str] = Counter()
    examples: dict[str, list[RejectedRow]] = {}
    sample: list[TransformedRow] = []
    total = accepted = 0
    for item in map_rows(conn, shape, fmap, opts, committed):
        total += 1
        if isinstance(item, TransformedRow):
            accepted += 1
            if len(sample) < sample_size:
                sample.append(item)
            continue
        by_reason[item.reason] += 1
        bucket = examples.setdefault(item.reason, [])
        if item.reason not in dropped and len(bucket) < examples_per_reason:
            bucket.append(item)
    groups = tuple(ReasonGroup(reason, count, tuple(examples.get(reason, [])))
                   for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    return DryRunReport(
        locator=conn.locator, shape=shape, config_id=config_id(shape, fmap, opts), total=total,
        accepted=accepted, rejected=total - accepted, sentinel=by_reason["unparseable_row"],
        by_reason=dict(by_reason), groups=groups, accepted_sample=tuple(sample),
        dropped_reasons=dropped,
    )


# ---- commit -------------------------------------------------------------------------------
def commit(project: Project, source: str | Connector, shape: str,
           field_map: dict[str, str] | None = None, options: dict | None = None, *,
           force: bool = False, gold: bool = False) -> CommitResult:
    """Append the accepted rows to the project's committed store and record the import.

    Refuses (LowConfidenceError) when introspection's confidence in ``shape`` for this source is
    below FORCE_THRESHOLD, unless ``force``. Emits ingestion/dataset_import_run on success and
    dataset_import_failed (then re-raises) when it fails before any row is committed.
    """
    locator = source if isinstance(source, str) else source.locator
    state: dict[str, Any] = {"stage": "opening the source"}
    try:
        conn = _connector(source, project)
        locator = conn.locator
        state["stage"] = "introspecting the source"
        check_shape(shape)
        hyps = introspect(conn)  # once: it proposes the field map and rates the shape
        state["stage"] = "resolving the mapping"
        fmap, opts = resolve(conn, shape, field_map, options, hyps)
        cid = config_id(shape, fmap, opts)
        state.update(stage="checking confidence", config_id=cid)
        hyp = _hypothesis(conn, shape, hyps)
        confidence = hyp.confidence if hyp is not None else 0.0
        if confidence < FORCE_THRESHOLD and not force:
            raise LowConfidenceError(
                f"introspection is only {confidence:.2f} confident that {locator} is {shape!r} "
                f"(below {FORCE_THRESHOLD:.2f}); check the dry run, then commit again with "
                "force=True (CLI: --force)", confidence)
        state["stage"] = "writing rows"
        import_id = f"imp-{secrets.token_hex(6)}"
        meta: dict[str, Any] = {
            "import_id": import_id, "locator": locator, "source": conn.kind, "shape": shape,
            "config_id": cid, "field_map": fmap, "options": opts, "confidence": confidence,
            "forced": bool(force and confidence < FORCE_THRESHOLD), "gold": bool(gold),
            "ts": datetime.now(UTC).isoformat(), "accepted": 0, "rejected": 0, "by_reason": {},
        }
        lines = _committed_lines(project, conn, shape, fmap, opts, meta)
        append_commit(project, lines, meta)
    except BaseException as exc:
        _emit_failure(project, locator, shape, state, exc)
        raise
    written = str(project.synthetic_path)
    event = project.events.append(
        stage="ingestion", severity="info", reason_code="dataset_import_run",
        summary=f"imported {meta['accepted']} rows of {locator} as {shape} "
                f"({meta['rejected']} rejected)",
        payload={"source": conn.kind, "locator": locator, "mapper": shape,
                 "accepted": meta["accepted"], "rejected": meta["rejected"],
                 "by_reason": meta["by_reason"], "written_path": written, "config_id": cid,
                 "import_id": import_id,
                 "gold": bool(gold), "confidence": confidence, "forced": meta["forced"]},
        run_id=import_id,
    )
    return CommitResult(locator=locator, shape=shape, config_id=cid, accepted=meta["accepted"],
                        rejected=meta["rejected"], written_path=written, event_id=event.id,
                        import_id=import_id)


def _committed_lines(project: Project, conn: Connector, shape: str, fmap: dict[str, str],
                     opts: dict[str, Any], meta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Store lines for accepted rows; counts land in ``meta`` as the stream is consumed.

    It starts inside the store's commit lock, so reading the committed hashes here sees every
    earlier commit, including one that finished while this one waited.
    """
    profile = task_profile(shape)
    for item in map_rows(conn, shape, fmap, opts, committed_keys(project)):
        if isinstance(item, RejectedRow):
            meta["rejected"] += 1
            meta["by_reason"][item.reason] = meta["by_reason"].get(item.reason, 0) + 1
            continue
        meta["accepted"] += 1
        yield {"import_id": meta["import_id"], "row_index": item.row_index, "shape": shape,
               "task_profile": profile, "config_id": meta["config_id"],
               "text_hash": item.text_hash, "record": item.record}


def _emit_failure(project: Project, locator: str, shape: str, state: dict[str, Any],
                  exc: BaseException) -> None:
    if not isinstance(exc, Exception):
        return  # KeyboardInterrupt/SystemExit: nothing sensible to record
    try:
        project.events.append(
            stage="ingestion", severity="error", reason_code="dataset_import_failed",
            summary=f"import of {locator} as {shape} failed while {state['stage']}: {exc}",
            payload={"locator": locator, "mapper": shape, "stage": state["stage"],
                     "error": f"{type(exc).__name__}: {exc}",
                     "config_id": state.get("config_id")},
        )
    except Exception:  # noqa: BLE001 - never hide the original error behind the event's
        pass

