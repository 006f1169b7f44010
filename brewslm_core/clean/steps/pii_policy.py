"""Remove rows by the PII policy: ``pii_unmaskable`` (mask policy, a finding straddles an offset)
or ``pii`` (drop policy). Reads what ``normalize`` found; ``block`` is decided over the whole set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import KEEP, STEPS, Doc, Drop, Verdict

if TYPE_CHECKING:
    from ..config import CleanConfig


@STEPS.register("pii_policy")
def pii_policy(cfg: CleanConfig):  # noqa: ANN201 - a RowStep
    if not cfg.pii or cfg.pii_policy not in ("mask", "drop"):
        return None

    def step(doc: Doc) -> Verdict:
        if doc.unmaskable and cfg.pii_policy == "mask":
            return Drop("pii_unmaskable")
        if doc.findings and cfg.pii_policy == "drop":
            return Drop("pii")
        return KEEP

    return step
