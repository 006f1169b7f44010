"""Cleaning steps (one small module each), run in ``CleanConfig.steps`` order over every row."""

from . import exact_dedup, near_dedup, normalize, pii_policy  # noqa: F401  (register the steps)
from .base import KEEP, STEPS, Change, Doc, Drop, Keep, RowStep, Verdict
from .dedup_group import beyond_text

__all__ = ["KEEP", "STEPS", "Change", "Doc", "Drop", "Keep", "RowStep", "Verdict", "beyond_text"]
