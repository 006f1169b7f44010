"""One detector per shape. Each scores a sample profile from structure AND content.

A detector returns ``Detection`` (confidence in [0, 1], why, field map, options) or None when the
shape plainly does not fit. Scores are calibrated so that a clean, unambiguous file lands at
0.85-0.97 and a guess lands below contracts.reasons.FORCE_THRESHOLD (0.80).
"""

from . import alignment, chat, extraction, labels, media, pairs  # noqa: F401  (they register)
from .base import DETECTORS, Detection

__all__ = ["DETECTORS", "Detection"]
