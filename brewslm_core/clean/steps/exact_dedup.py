"""Remove ``exact_duplicate`` rows: the same normalised text as an earlier row of the same shape
(and the same media / tools / answers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dedup import exact_key
from .base import KEEP, STEPS, Doc, Drop, Verdict
from .dedup_group import beyond_text

if TYPE_CHECKING:
    from ..config import CleanConfig


@STEPS.register("exact_dedup")
def exact_dedup(cfg: CleanConfig):  # noqa: ANN201 - a RowStep
    if not cfg.exact_dedup:
        return None
    seen: dict[str, str] = {}

    def step(doc: Doc) -> Verdict:
        key = exact_key(doc.text, f"{doc.shape}\x00{beyond_text(doc.shape, doc.record)}")
        if key in seen:
            return Drop("exact_duplicate", duplicate_of=seen[key])
        seen[key] = doc.doc_id
        return KEEP

    return step
