"""Coach stage ``gold_set``: gold-set size against the named thresholds, and the annotation queue."""

from __future__ import annotations

from ..contracts.coach import Suggestion
from ..contracts.thresholds import GOLD_ROW_COMFORTABLE_MIN, GOLD_ROW_THIN_MAX, topup
from .base import GENERATORS, navigate, ordered, playbook, say
from .facts import Facts


def gold_size(facts: Facts) -> tuple[int, int]:
    """(gold rows in the manifest, gold rows committed): they differ until prepare re-runs."""
    committed = sum(int(i.get("rows", 0)) for i in facts.imports if i.get("gold"))
    committed += sum(int(job["promoted"]) for job in facts.annotation_jobs)
    prepared = int(((facts.manifest or {}).get("counts") or {}).get("gold", 0))
    return prepared, committed


def size_suggestion(gold: int) -> Suggestion:
    """The threshold transitions of seed 004: ≤ 99 critical, < 300 warning, else info."""
    rows = topup(gold)
    action = playbook(f"Label {rows} more rows", "annotate_topup", rows=rows)
    if gold <= GOLD_ROW_THIN_MAX:
        return say("critical", f"Your gold set has {gold} rows",
                   f"{GOLD_ROW_THIN_MAX} or fewer gold rows is thin: promotion gates and drift "
                   f"checks lean on it. Label {rows} more to reach {GOLD_ROW_COMFORTABLE_MIN}.",
                   action)
    if gold < GOLD_ROW_COMFORTABLE_MIN:
        return say("warning", f"Your gold set has {gold} rows",
                   f"Usable, but {GOLD_ROW_COMFORTABLE_MIN}+ is comfortable; label {rows} more.",
                   action)
    return say("info", f"Your gold set has {gold} rows",
               f"At or above the comfortable {GOLD_ROW_COMFORTABLE_MIN}; keep it apart from training.",
               navigate("Open the gold set", "gold-set"))


@GENERATORS.register("gold_set")
def gold_set_suggestions(facts: Facts) -> list[Suggestion]:
    prepared, committed = gold_size(facts)
    out = [size_suggestion(max(prepared, committed) if facts.manifest is None else prepared)]
    if facts.manifest is not None and committed != prepared:
        out.append(say("warning", f"{committed} gold rows are committed, the manifest has {prepared}",
                       "Gold rows were added (or promoted from annotation) after the last prepare; "
                       "re-run prepare so Preflight and Eval see them.",
                       playbook("Re-run prepare", "prepare")))
    for job in facts.annotation_jobs:
        labelled, promoted = int(job["labelled"]), int(job["promoted"])
        pending = int(job["target_rows"]) - labelled
        if labelled > promoted:
            out.append(say("warning", f"{labelled - promoted} labelled rows of job `{job['name']}` "
                           "are not in the gold set yet",
                           f"Job {job['job_id']} has {labelled} of {job['target_rows']} rows labelled; "
                           "promote them to count as gold.",
                           playbook("Promote labelled rows", "promote_annotations",
                                    job_id=job["job_id"])))
        elif pending > 0:
            out.append(say("info", f"Annotation job `{job['name']}`: {pending} rows to label",
                           f"{labelled} of {job['target_rows']} labelled so far.",
                           navigate("Open the annotation queue", "annotation-queue",
                                    job_id=job["job_id"])))
    return ordered(out)
