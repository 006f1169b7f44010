from __future__ import annotations

from typing import Any

from .base import Contract, contract


@contract
class TransformedRow(Contract):
    """A source row normalised into its shape's canonical record.

    ``record`` keys per shape are documented in brewslm_core/mapping/shapes.py.
    """

    row_index: int  # 0-based position in the source stream (sentinels included)
    shape: str
    record: dict[str, Any]
    text_hash: str  # sha256 of the normalised record, for dedup and leakage checks


@contract
class RejectedRow(Contract):
    row_index: int
    reason: str  # one of contracts.reasons.ROW_REJECT_CODES
    detail: str  # what exactly was wrong, for a person
    raw: dict[str, Any] | str  # the source row (or a sentinel's raw text)


@contract
class ReasonGroup(Contract):
    reason: str
    count: int
    examples: tuple[RejectedRow, ...]  # a few, for the rejection table


@contract
class DryRunReport(Contract):
    locator: str
    shape: str
    config_id: str
    total: int
    accepted: int
    rejected: int
    sentinel: int  # sentinel rows, counted inside rejected as unparseable_row
    by_reason: dict[str, int]
    groups: tuple[ReasonGroup, ...]
    accepted_sample: tuple[TransformedRow, ...]
    dropped_reasons: tuple[str, ...] = ()  # reasons hidden from the rendered sample only


@contract
class CommitResult(Contract):
    locator: str
    shape: str
    config_id: str
    accepted: int
    rejected: int
    written_path: str
    event_id: int
    import_id: str
