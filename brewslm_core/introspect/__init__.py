"""Introspect stage: ranked shape hypotheses over ~20 sample rows. A read; never auto-picks."""

from .core import introspect, rank_rows
from .detectors import DETECTORS, Detection

__all__ = ["introspect", "rank_rows", "DETECTORS", "Detection"]
