from __future__ import annotations

from .base import Contract, contract


@contract
class ProposedMapping(Contract):
    """How to read a source as one shape: canonical field name -> source field path.

    Paths use dots for nesting (``answers.text``); ``confidence`` is the hypothesis' score.
    """

    shape: str
    field_map: dict[str, str]
    confidence: float
    options: dict[str, object] | None = None  # e.g. {"label_set": [...], "role_key": "from"}


@contract
class ShapeHypothesis(Contract):
    shape: str
    confidence: float  # in [0, 1]
    rationale: str
    mapping: ProposedMapping
