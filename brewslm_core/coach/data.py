"""Coach stage ``data``: imports, their per-reason rejections, failed imports, label balance."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..contracts.coach import Suggestion
from .base import GENERATORS, navigate, ordered, pct, playbook, say
from .facts import Facts

# What to do about each row-level reject code (every code in contracts.reasons.ROW_REJECT_CODES).
REASON_ADVICE: dict[str, str] = {
    "unparseable_row": "those lines could not be parsed; they are kept as sentinel rows with their "
                       "raw bytes — fix the file (encoding, quoting) and re-import",
    "missing_field": "a field the shape needs is not in those rows; map another column to it",
    "empty_text": "a required text field is blank; drop these rows on purpose or fill the field",
    "type_mismatch": "a field has the wrong type (a list where text is expected); map the right "
                     "column or flatten it",
    "label_not_in_set": "their label is outside the declared label set; add the labels or drop them",
    "span_out_of_bounds": "a span or answer offset falls outside its text; check the offset base",
    "span_text_mismatch": "the answer text does not match the context at its offset",
    "length_mismatch": "tokens and tags differ in length; the tokenisation of the source differs",
    "invalid_role_sequence": "chat turns have an unknown role or no assistant turn; set role_key "
                             "or the role names",
    "media_missing": "the image/audio files they point to are not there; set the media base folder",
    "duplicate_row": "they repeat rows already committed or earlier in the file — nothing to fix",
    "ragged_row": "they have more cells than the header (an unquoted delimiter); quote the field",
    "dropped_by_user": "you asked to drop this reason; nothing to fix",
}
HARMLESS = frozenset({"duplicate_row", "dropped_by_user"})
# Column names that usually mean a canonical field (used to name the column to map).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "output": ("response", "answer", "completion", "target", "reply", "output_text"),
    "instruction": ("prompt", "question", "query", "instruction_text", "input_text"),
    "input": ("context", "input_text"),
    "text": ("sentence", "content", "body", "message", "document", "review"),
    "label": ("category", "intent", "class", "labels", "target"),
    "source": ("input", "src", "article", "document"),
    "target": ("output", "tgt", "summary", "highlights"),
    "question": ("query", "prompt"),
    "context": ("passage", "document", "paragraph"),
    "answers": ("answer", "answer_text"),
    "messages": ("conversations", "conversation", "turns", "dialog"),
}


_COLUMNS_SEEN: dict[tuple[str, int, int], list[str] | None] = {}


def _first_row_keys(locator: str) -> list[str] | None:
    """The columns of the source's first row (the connector reads the file's head, never all of
    it). Remembered in this process per (path, size, mtime), so a polling dashboard pays once."""
    path = Path(locator.partition(":")[2])
    try:
        stat = path.stat()
    except OSError:
        return None  # moved or remote: no field-map advice
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _COLUMNS_SEEN:
        _COLUMNS_SEEN[key] = _read_first_row_keys(locator)
    return _COLUMNS_SEEN[key]


def _read_first_row_keys(locator: str) -> list[str] | None:
    kind, _, rest = locator.partition(":")
    try:
        if kind in ("csv", "tsv"):  # the header line only
            import csv

            with open(rest, encoding="utf-8-sig", errors="replace", newline="") as fh:
                header = next(csv.reader(fh, delimiter="\t" if kind == "tsv" else ","), None)
            if header and not (len(header) == 1 and any(c in header[0] for c in ";|\t")):
                return header
            # another delimiter: let the connector detect it (below)
        if kind == "jsonl":  # the first object only
            import json

            with open(rest, encoding="utf-8", errors="replace") as fh:
                first = json.loads(fh.readline() or "null")
            return [k for k in first if not str(k).startswith("_")] if isinstance(first, dict) else None
    except (OSError, ValueError):
        return None
    try:  # other formats: the connector's own reader, stopped at the first row
        from ..ingest import open_source

        for row in open_source(locator).load():
            if isinstance(row, dict):
                return [k for k in row if not str(k).startswith("_")]
            return None
    except Exception:  # noqa: BLE001 - an unreadable source just means no field-map advice
        return None
    return None


def suggest_field_map(field_map: dict[str, str], columns: list[str]) -> dict[str, str]:
    """Canonical fields whose mapped column is absent, re-pointed at a present, unused column."""
    present = set(columns)
    used = {v for v in field_map.values() if v in present}
    fixed: dict[str, str] = {}
    for canonical, column in field_map.items():
        if column in present:
            continue
        free = [c for c in columns if c not in used and c not in fixed.values()]
        pick = next((c for c in SYNONYMS.get(canonical, ()) if c in free), None)
        if pick is None:
            close = difflib.get_close_matches(column, free, n=1, cutoff=0.5)
            pick = close[0] if close else None
        if pick is not None:
            fixed[canonical] = pick
    return fixed


def _import_rejections(imp: dict[str, Any]) -> list[Suggestion]:
    out: list[Suggestion] = []
    by_reason: dict[str, int] = dict(imp.get("by_reason") or {})
    rejected = int(imp.get("rejected") or sum(by_reason.values()))
    accepted = int(imp.get("accepted") or imp.get("rows") or 0)
    total = accepted + rejected
    locator, shape = str(imp.get("locator", "?")), str(imp.get("shape", "?"))
    serious = {r: n for r, n in by_reason.items() if r not in HARMLESS and n}
    for reason, count in sorted(serious.items(), key=lambda kv: -kv[1]):
        share_rejected, share_total = pct(count, rejected), count / total if total else 0
        severity = "critical" if share_total >= 0.5 else "warning" if share_total >= 0.02 else "info"
        title = f"{share_rejected} of rejected rows are `{reason}` in {locator}"
        body = (f"{count} of {total} rows ({pct(count, total)}) of import {imp.get('import_id')} "
                f"({shape}) were rejected as {reason}: {REASON_ADVICE.get(reason, reason)}.")
        action = navigate("Open the rejection table", "rejection-table", locator=locator,
                          reason=reason, import_id=imp.get("import_id"))
        if reason == "missing_field":
            fmap = dict(imp.get("field_map") or {})
            columns = _first_row_keys(locator) or []
            fixed = suggest_field_map(fmap, columns)
            if fixed:
                change = ", ".join(f"map `{col}` as {canon}" for canon, col in fixed.items())
                title = f"{share_rejected} of rejected rows are `missing_field` — {change}"
                body += (f" The import mapped {', '.join(f'{k}←{fmap[k]}' for k in fixed)}, but the "
                         f"source has no such column; it has {', '.join(columns)}.")
                action = playbook(f"Re-map: {change}", "remap", locator=locator, shape=shape,
                                  field_map={**fmap, **fixed}, gold=bool(imp.get("gold")))
        out.append(say(severity, title, body, action))
    for reason in sorted(r for r in HARMLESS if by_reason.get(r)):
        out.append(say("info", f"{by_reason[reason]} rows of {locator} were `{reason}`",
                       f"{REASON_ADVICE[reason].capitalize()} ({pct(by_reason[reason], total)} of "
                       f"{total} rows).",
                       navigate("Open the rejection table", "rejection-table", locator=locator,
                                reason=reason, import_id=imp.get("import_id"))))
    if imp.get("forced"):
        out.append(say("warning", f"{locator} was imported as {shape} at confidence "
                       f"{float(imp.get('confidence') or 0):.2f}",
                       "The commit was forced below the 0.80 confidence bar; check the accepted "
                       "sample before training on it.",
                       navigate("Review the shape hypotheses", "introspect", locator=locator)))
    return out


def _failed_imports(facts: Facts) -> list[Suggestion]:
    ok_locators = {str(i.get("locator")) for i in facts.imports}
    out, seen = [], set()
    for ev in facts.events("ingestion"):  # newest first
        if ev.get("reason_code") != "dataset_import_failed":
            continue
        payload = ev.get("payload") or {}
        locator = str(payload.get("locator", "?"))
        if locator in seen or locator in ok_locators:
            continue  # a later import of the same source went through
        seen.add(locator)
        out.append(say("critical", f"Import of {locator} failed while {payload.get('stage', '?')}",
                       f"{payload.get('error', ev.get('summary'))}. No rows of it were committed.",
                       navigate("Open the import step", "ingest", locator=locator,
                                shape=payload.get("mapper"))))
    for ev in facts.events("ingestion"):
        if ev.get("reason_code") in ("ingest_unsupported_format", "ingest_io_error",
                                     "ingest_validation_failed"):
            out.append(say("critical", f"Ingest: {ev.get('reason_code')}", str(ev.get("summary")),
                           navigate("Open the import step", "ingest")))
            break
    return out


def label_balance(manifest: dict[str, Any] | None) -> list[Suggestion]:
    """A label far rarer than the rest (from the manifest's train label counts)."""
    if not manifest:
        return []
    counts = (manifest.get("label_counts") or {}).get("train") or {}
    if len(counts) < 2:
        return []
    items = sorted(counts.items(), key=lambda kv: kv[1])
    rare, floor_others = items[0], items[1][1]
    if rare[1] * 4 > floor_others:
        return []
    few = [lab for lab, n in items if n * 4 <= floor_others]
    return [say("warning", f"label `{rare[0]}` has {rare[1]} rows, the others ≥ {floor_others}",
                f"{len(few)} label(s) ({', '.join(few[:5])}) have under a quarter of the rows of "
                f"the next label; the model will rarely predict them. Label more of them.",
                playbook(f"Label {floor_others - rare[1]} more `{rare[0]}` rows", "annotate_topup",
                         rows=floor_others - rare[1], label=rare[0]))]


@GENERATORS.register("data")
def data_suggestions(facts: Facts) -> list[Suggestion]:
    out = _failed_imports(facts)
    if not facts.imports and not out:
        return [say("info", "No data imported yet",
                    "Import a file: introspection proposes a shape, the dry run shows every "
                    "rejection before anything is committed.",
                    navigate("Import data", "ingest"))]
    latest: dict[str, dict[str, Any]] = {}
    for imp in facts.imports:  # a re-import of the same source supersedes its rejections
        latest[str(imp.get("locator"))] = imp
    for imp in latest.values():
        out.extend(_import_rejections(imp))
    profiles = {}
    for imp in facts.imports:
        profiles.setdefault(str(imp.get("shape")), 0)
        profiles[str(imp.get("shape"))] += int(imp.get("rows", 0))
    if len(profiles) > 1:
        mix = ", ".join(f"{s} {n}" for s, n in profiles.items())
        out.append(say("warning", f"{len(profiles)} shapes are committed: {mix}",
                       "Prepare trains one task profile; rows of the other shapes are left out.",
                       navigate("Review the imports", "imports")))
    out.extend(label_balance(facts.manifest))
    if not out:
        total = facts.committed_rows
        out.append(say("info", f"{total} rows committed from {len(facts.imports)} import(s), "
                       "none rejected", "The data stage has nothing to fix; clean next.",
                       navigate("Go to cleaning", "clean")))
    return ordered(out)
