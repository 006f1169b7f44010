"""introspect(): sample a source, run every shape detector, rank the hypotheses best first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts import ProposedMapping, SentinelRow, ShapeHypothesis
from ..contracts.reasons import SHAPES
from ..ingest import Connector, open_connector, sample_rows
from .detectors import DETECTORS
from .profile import SampleProfile

if TYPE_CHECKING:
    from ..project import Project


def introspect(source: str | os.PathLike[str] | Connector, n: int = 20,
               project: Project | None = None) -> list[ShapeHypothesis]:
    """Ranked shape hypotheses for ~``n`` stratified sample rows of ``source``, best first.

    Raises ingest.IngestError when the source cannot be read at all.
    """
    conn = open_connector(source, project)
    sample = [row for _, row in sample_rows(conn, n=n)]
    return rank_rows(sample, base_dir=getattr(conn, "base_dir", None))


def rank_rows(rows: list[Any], base_dir: Path | None = None) -> list[ShapeHypothesis]:
    """Score every registered detector on sample rows (dicts and SentinelRows), best first."""
    sentinels = sum(isinstance(r, SentinelRow) for r in rows)
    prof = SampleProfile.of(rows, sentinels=sentinels, base_dir=base_dir)
    total = prof.total
    out: list[ShapeHypothesis] = []
    if not prof.rows:
        return out
    for shape in DETECTORS:
        found = DETECTORS.get(shape)(prof)
        if found is None or found.confidence <= 0:
            continue
        conf, why = found.confidence, found.rationale
        if sentinels:
            # Unparseable rows mean the structure we saw may not hold for the whole file.
            conf *= 1 - sentinels / total
            why += (f"; {sentinels} of {total} sampled rows could not be parsed (sentinel rows), "
                    "which lowers confidence")
        conf = round(max(0.0, min(1.0, conf)), 3)
        mapping = ProposedMapping(shape=shape, field_map=dict(found.field_map), confidence=conf,
                                  options=dict(found.options) or None)
        out.append(ShapeHypothesis(shape=shape, confidence=conf, rationale=why, mapping=mapping))
    out.sort(key=lambda h: (-h.confidence, SHAPES.index(h.shape)))
    return out
