"""Named thresholds shared by the Coach and the stages that gate on the same numbers.

They live in contracts (the lowest layer) so Preflight's gate checks and the Coach's gold-set
generator read one definition: the Coach sits above the model stages and Preflight may not
import it. Values from seed 004; they tune over time, the severity transitions stay.
"""

from __future__ import annotations

GOLD_ROW_THIN_MAX = 99  # at or below: thin (the Coach says "critical")
GOLD_ROW_COMFORTABLE_MIN = 300  # the size a suggested top-up tries to reach
SUGGESTED_TOPUP_FLOOR = 20  # never suggest fewer rows than this
SUGGESTED_TOPUP_CEILING = 500  # never suggest more rows than this


def topup(gold_rows: int) -> int:
    """Rows to add to reach the comfortable gold size, clamped to [floor, ceiling]."""
    return min(max(GOLD_ROW_COMFORTABLE_MIN - gold_rows, SUGGESTED_TOPUP_FLOOR),
               SUGGESTED_TOPUP_CEILING)
