"""What a cleaning step is: a callable over one row that returns keep, a change, or a drop.

The datatrove pattern: the clean run passes every committed row through the configured steps in
order (``CleanConfig.steps``); the first ``Drop`` removes the row with its reason code and the
later steps do not see it. A new step is one small module here that registers a factory
``(CleanConfig) -> step | None`` (None: the config turned it off) plus its name in the config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...contracts.shapes import record_text
from ...registry import Registry

if TYPE_CHECKING:
    from ..config import CleanConfig


@dataclass
class Doc:
    """One committed row on its way through the steps. Steps edit ``record`` in place."""

    row: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)  # PII, set by normalize
    offsets: str | None = None  # "remapped" | "kept_unedited" | None, set by normalize
    unmaskable: bool = False  # a PII finding straddles an offset (mask policy)
    _text: str | None = None

    @property
    def shape(self) -> str:
        return self.row["shape"]

    @property
    def record(self) -> dict[str, Any]:
        return self.row["record"]

    @property
    def doc_id(self) -> str:
        return f"{self.row['import_id']}:{self.row['row_index']}"

    @property
    def text(self) -> str:
        """The record's document text (``record_text``), after any edits so far."""
        if self._text is None:
            self._text = record_text(self.shape, self.record)
        return self._text

    def edited(self) -> None:
        self._text = None


class Keep:
    """The row goes on unchanged."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True)
class Change:
    """The step changed the record (in place); ``actions`` name what it did (counted per step)."""

    actions: tuple[str, ...]


@dataclass(frozen=True)
class Drop:
    """Remove the row: ``reason`` is its code in the report; ``duplicate_of`` a doc id."""

    reason: str
    duplicate_of: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra metadata fields


Verdict = Keep | Change | Drop


class RowStep(Protocol):
    def __call__(self, doc: Doc) -> Verdict: ...


StepFactory = Callable[["CleanConfig"], RowStep | None]
STEPS: Registry[StepFactory] = Registry("cleaning step")
