"""Annotation contracts: a labelling job over project rows and one item of its queue."""

from __future__ import annotations

from .base import Contract, contract

LABEL_TYPES: tuple[str, ...] = ("classification",)  # one label per row from the job's label set


@contract
class AnnotationJob(Contract):
    job_id: str
    name: str
    label_type: str
    source: str  # committed | eval
    target_rows: int
    labels: tuple[str, ...]
    labelled: int
    promoted: int
    created_at: str


@contract
class AnnotationItem(Contract):
    item_id: int
    text: str
    suggested: str | None  # the row's current label, if it had one
    label: str | None  # the latest reviewer label, None while pending
    actor: str | None
