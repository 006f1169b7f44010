"""Remove ``near_duplicate`` rows: MinHash/LSH estimated Jaccard >= the threshold against an
earlier kept row of the same shape (and tools/answers). Media rows are left to exact dedup."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...contracts.shapes import MEDIA_SHAPES
from ..dedup import NearDupIndex
from .base import KEEP, STEPS, Doc, Drop, Verdict
from .dedup_group import beyond_text

if TYPE_CHECKING:
    from ..config import CleanConfig


@STEPS.register("near_dedup")
def near_dedup(cfg: CleanConfig):  # noqa: ANN201 - a RowStep
    if not cfg.near_dup:
        return None
    near: dict[str, NearDupIndex] = {}  # one index per shape (+ tools/answers)

    def step(doc: Doc) -> Verdict:
        if doc.shape in MEDIA_SHAPES:
            return KEEP
        group = f"{doc.shape}\x00{beyond_text(doc.shape, doc.record)}"
        if group not in near:
            near[group] = NearDupIndex(cfg.near_dup_threshold, cfg.near_dup_num_perm, cfg.near_dup_shingle,
                                       cfg.near_dup_shingle_size, cfg.near_dup_min_shingles)
        dup_of, sim = near[group].check_and_add(doc.doc_id, doc.text)
        if dup_of is None:
            return KEEP
        return Drop("near_duplicate", duplicate_of=dup_of, details={"near_dup_similarity": sim})

    return step
