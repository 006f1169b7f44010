"""``low_quality`` outliers: decided over the whole set (the cap is a share of all rows), after
the row steps. Above the cap nothing is removed and the report says the threshold was exceeded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import CleanConfig


def decide(scores: Sequence[tuple[int, float | None]], n_rows: int, cfg: CleanConfig
           ) -> tuple[dict[str, Any], set[int], set[int]]:
    """``scores`` = (row number, quality) of the kept rows -> (summary, flagged rows, rows to drop)."""
    flagged = {i for i, q in scores if q is not None and q < cfg.min_quality}
    cap_n = int(cfg.max_outlier_fraction * n_rows)
    exceeded = bool(cfg.remove_outliers and len(flagged) > cap_n)
    drop = flagged if cfg.remove_outliers and flagged and not exceeded else set()
    summary = {"flagged": len(flagged), "removed": len(drop), "min_quality": cfg.min_quality,
               "cap_fraction": cfg.max_outlier_fraction, "cap_rows": cap_n,
               "threshold_exceeded": exceeded}
    return summary, flagged, drop
