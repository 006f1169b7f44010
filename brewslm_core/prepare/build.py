"""prepare(): committed (or cleaned) rows -> prepared/{train,eval,gold}.jsonl + manifest.json."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..common import atomic_file, atomic_write_text, file_lock
from ..contracts.prepare import (
    MANIFEST_SCHEMA_VERSION,
    SPLITS,
    Manifest,
    OutputSchema,
    SplitFile,
    file_sha256_and_rows,
)
from ..contracts.reasons import SHAPES, TASK_PROFILES
from ..contracts.shapes import RECORD_KEYS
from ..project import Project
from . import profile as prof
from .source import CleanBlockedError, load_rows
from .split import SplitError, check_fraction, split_groups
from .tokens import empty_target_audit, measure

LINE_KEYS = ("import_id", "row_index", "shape", "task_profile", "config_id", "text_hash", "split")


class PrepareError(RuntimeError):
    """Prepare refused; ``reason_code`` is set when an adapter error event was recorded."""

    def __init__(self, message: str, reason_code: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


def _fail(project: Project, reason_code: str, message: str, payload: dict[str, Any]) -> None:
    project.events.append(stage="adapter", severity="error", reason_code=reason_code,
                          summary=message[:200], payload=payload)
    raise PrepareError(message, reason_code)


def _choose_profile(project: Project, requested: str | None, profiles: Counter[str]
                    ) -> prof.ProfileChoice:
    preset = project.config.get("adapter", {}).get("preset")
    name, chosen_by = (requested, "argument") if requested else (preset, "preset")
    if name:
        parsed = prof.parse_choice(str(name))
        if parsed is None:
            _fail(project, "adapter_field_resolution_failed",
                  f"{chosen_by} {name!r} is neither a task profile ({', '.join(TASK_PROFILES)}) "
                  f"nor a shape ({', '.join(SHAPES)}); pick one of those",
                  {"requested": name, "chosen_by": chosen_by})
        choice = prof.ProfileChoice(parsed[0], parsed[1], chosen_by)
        if profiles[choice.profile] == 0:
            _fail(project, "adapter_schema_mismatch",
                  f"{chosen_by} asks for task profile {choice.profile!r} but no committed row has "
                  f"it (rows per profile: {dict(profiles)}); import matching data or choose "
                  "one of those profiles",
                  {"requested": name, "profile": choice.profile, "rows_by_profile": dict(profiles)})
        return choice
    if len(profiles) > 1:
        _fail(project, "adapter_schema_mismatch",
              f"committed rows span several task profiles {dict(profiles)}; pick one with "
              "task_profile=… (`--task-profile`) or set [adapter] preset in brewslm.toml, and the "
              "other rows are left out",
              {"rows_by_profile": dict(profiles)})
    return prof.ProfileChoice(next(iter(profiles)), None, "inferred")


def _check_fields(project: Project, rows: list[dict[str, Any]]) -> None:
    missing: Counter[str] = Counter()
    for row in rows:
        record = row.get("record")
        need = RECORD_KEYS.get(row.get("shape") or "", ())
        if not isinstance(record, dict) or not need:
            missing[f"{row.get('shape')}: unreadable record"] += 1
            continue
        for key in need:
            if key not in record:
                missing[f"{row['shape']}.{key}"] += 1
    if missing:
        _fail(project, "adapter_field_resolution_failed",
              f"{sum(missing.values())} rows lack fields their shape needs ({dict(missing)}); "
              "re-import them through the map stage",
              {"missing": dict(missing)})


def _planned_model(project: Project, base_model: str | None, profile: str,
                   max_length: int | None) -> tuple[dict[str, Any], Any, int]:
    """(base_model entry, tokenizer or None, max_length)."""
    from ..models import ModelNotAvailableError, load_tokenizer, resolve_base

    requested = base_model or str(project.config.get("model", {}).get("base", "auto"))
    entry: dict[str, Any] = {"requested": requested}
    tokenizer = None
    try:
        ref = resolve_base(requested, profile)
        entry.update(name=ref.name, family=ref.family, kind=ref.kind, source=ref.source)
        tokenizer = load_tokenizer(ref)
    except ModelNotAvailableError as exc:
        if base_model:  # asked for by name: a typo or a missing folder is the caller's to fix
            raise PrepareError(f"cannot plan base model {base_model!r}: {exc}") from exc
        # The project default is not installed: the data can still be prepared; Preflight
        # will block training until the model is there.
        entry["tokenizer_error"] = str(exc)
    length = max_length or project.config.get("model", {}).get("max_length")
    length = int(length or prof.DEFAULT_MAX_LENGTH[profile])
    if length < 8:
        raise PrepareError(f"max_length {length} is too small; use at least 8 (e.g. 128)")
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 100_000:  # huge values mean "no limit recorded"
        entry["model_max_length"] = limit
        if length > limit:
            raise PrepareError(
                f"max_length {length} is more than {entry['name']} accepts ({limit} tokens); "
                f"use max_length <= {limit} or another base model"
            )
    return entry, tokenizer, length


def _write_jsonl(root: Path, path: Path, rows: list[dict[str, Any]]) -> SplitFile:
    """Write atomically (temp file + fsync + rename) and describe the file for the manifest."""
    with atomic_file(path, "w", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    sha, count = file_sha256_and_rows(path)
    return SplitFile(path=path.relative_to(root).as_posix(), sha256=sha, rows=count)


def _line(row: dict[str, Any], split: str) -> dict[str, Any]:
    out = {key: row.get(key) for key in LINE_KEYS}
    out["split"] = split
    out["record"] = row["record"]
    return out


def prepare(
    project: Project,
    *,
    task_profile: str | None = None,
    eval_fraction: float = 0.1,
    seed: int | None = None,
    base_model: str | None = None,
    max_length: int | None = None,
) -> Manifest:
    """Split the project's rows into train/eval (+ gold) files and write the manifest.

    Raises PrepareError (with an adapter error event where the taxonomy has a code) when the
    rows cannot be prepared; the message says what to do.
    """
    with file_lock(project.prepared_dir / ".prepare.lock"):  # one prepare at a time
        return _prepare(project, task_profile=task_profile, eval_fraction=eval_fraction,
                        seed=seed, base_model=base_model, max_length=max_length)


def _prepare(
    project: Project,
    *,
    task_profile: str | None,
    eval_fraction: float,
    seed: int | None,
    base_model: str | None,
    max_length: int | None,
) -> Manifest:
    try:
        check_fraction(eval_fraction)
        rows, source = load_rows(project)
    except (SplitError, CleanBlockedError) as exc:
        raise PrepareError(str(exc)) from exc
    if not rows:
        raise PrepareError(
            "the project has no committed rows; import data first (map dry run, then commit)"
        )
    seed = int(project.config.get("runtime", {}).get("seed", 13) if seed is None else seed)
    if not 0 <= seed < 2**32:
        raise PrepareError(f"seed must be between 0 and 2**32 - 1, got {seed}")

    choice = _choose_profile(project, task_profile, Counter(r["task_profile"] for r in rows))
    excluded: Counter[str] = Counter()
    kept = []
    for row in rows:
        reason = choice.exclusion_reason(row)
        if reason:
            excluded[reason] += 1
        else:
            kept.append(row)
    _check_fields(project, kept)
    profile = choice.profile

    gold_ids = set(source["gold_import_ids"])
    gold = [r for r in kept if r["import_id"] in gold_ids]
    gold_hashes = {r["text_hash"] for r in gold}
    pool = []
    for row in kept:
        if row["import_id"] in gold_ids:
            continue
        if row["text_hash"] in gold_hashes:  # never train or tune on a gold text
            excluded["gold_overlap"] += 1
        else:
            pool.append(row)
    try:
        eval_hashes, policy = split_groups(
            ((r["text_hash"], prof.stratum_of(profile, r["shape"], r["record"])) for r in pool),
            eval_fraction, seed,
        )
    except SplitError as exc:
        raise PrepareError(str(exc)) from exc
    policy["stratified_by"] = (
        ("label" if profile in prof.LABEL_PROFILES else "answerability_or_verdict")
        if policy["stratified"] else None
    )
    policy["gold"] = "gold imports kept apart in gold.jsonl; same-text rows left out of train/eval"
    splits = {
        "train": [r for r in pool if r["text_hash"] not in eval_hashes],
        "eval": [r for r in pool if r["text_hash"] in eval_hashes],
        "gold": gold,
    }

    shapes = sorted({r["shape"] for r in kept})
    labels = {s: Counter(prof.label_of(profile, r["record"]) for r in rs) for s, rs in splits.items()}
    label_set = sorted(set().union(*labels.values())) if profile in prof.LABEL_PROFILES else []
    if label_set:
        unseen = sorted(set(label_set) - set(labels["train"]))
        policy["labels_missing_from_train"] = unseen

    entry, tokenizer, length = _planned_model(project, base_model, profile, max_length)
    audited = [(s, r) for s in SPLITS for r in splits[s]]
    if tokenizer is not None:
        stats, audit = measure(audited, profile, tokenizer, entry["name"], length)
    else:
        stats, audit = None, empty_target_audit(audited, profile, length)
        project.events.append(
            stage="adapter", severity="warning",
            summary="dataset-prep: planned tokenizer unavailable; token stats skipped",
            payload={"base_model": entry},
        )

    out_dir = project.prepared_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    # Drop the old manifest first: a crash part-way then leaves no manifest, never a stale one
    # that vouches for new files.
    project.manifest_path.unlink(missing_ok=True)
    files = {}
    for split in SPLITS:
        path = out_dir / f"{split}.jsonl"
        if split == "gold" and not gold:
            path.unlink(missing_ok=True)
            continue
        files[split] = _write_jsonl(project.root, path, [_line(r, split) for r in splits[split]])

    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        task_profile=profile,
        shapes=tuple(shapes),
        output_schema=OutputSchema(
            scoring_mode=prof.scoring_mode(profile, set(shapes)),
            target_field="|".join(sorted({prof.TARGET_FIELDS[s] for s in shapes})),
        ),
        label_set=tuple(label_set),
        counts={s: len(splits[s]) for s in SPLITS},
        label_counts=(
            {s: dict(sorted(c.items())) for s, c in labels.items()} if label_set else {}
        ),
        excluded=dict(sorted(excluded.items())),
        files=files,
        source={**source, "task_profile_chosen_by": choice.chosen_by,
                "preset_shape": choice.shape},
        seed=seed,
        split_policy=policy,
        base_model=entry,
        max_length=length,
        token_stats=stats,
        supervision_audit=audit,
    )
    atomic_write_text(project.manifest_path, manifest.to_json())
    project.events.append(
        stage="adapter", severity="info", summary="dataset-prep summary",
        payload={
            "task_profile": profile,
            "scoring_mode": manifest.output_schema.scoring_mode,
            "counts": manifest.counts,
            "excluded": manifest.excluded,
            "rows_from": source["rows_from"],
            "stratified": policy["stratified"],
            "train_only_strata": policy["train_only_strata"],
            "seed": seed,
            "base_model": entry.get("name", entry["requested"]),
            "max_length": length,
            "supervision_audit": audit.by_reason,
            "manifest": project.manifest_path.relative_to(project.root).as_posix(),
        },
    )
    return manifest


