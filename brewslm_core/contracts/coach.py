"""Coach Mode contracts (seed 004): a Suggestion with one Action, and what executing it did."""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

COACH_STAGES: tuple[str, ...] = ("data", "cleaning", "gold_set", "training", "eval")
COACH_SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
ACTION_KINDS: tuple[str, ...] = ("navigate", "run_playbook", "augment_from_cluster")
_RANK = {"critical": 0, "warning": 1, "info": 2}


@contract
class Action(Contract):
    """What a suggestion's button does; the UI routes on ``kind`` alone."""

    kind: str  # navigate | run_playbook | augment_from_cluster
    label: str
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}; expected one of {list(ACTION_KINDS)}")
        if not isinstance(self.params, dict):
            raise ValueError("action params must be a dict")

    @classmethod
    def from_dict(cls, data: Any) -> Action:
        """An Action from plain JSON; ValueError says what is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError("an action must be a JSON object {kind, label, params}")
        kind = data.get("kind")
        params = data.get("params", {})
        if not isinstance(kind, str):
            raise ValueError(f"action.kind must be one of {list(ACTION_KINDS)}")
        if not isinstance(params, dict):
            raise ValueError("action.params must be a JSON object")
        return cls(kind=kind, label=str(data.get("label", "")), params=params)


@contract
class Suggestion(Contract):
    severity: str  # info | warning | critical
    title: str
    body: str
    action: Action

    def __post_init__(self) -> None:
        if self.severity not in COACH_SEVERITIES:
            raise ValueError(f"unknown suggestion severity {self.severity!r}; "
                             f"expected one of {list(COACH_SEVERITIES)}")

    @property
    def rank(self) -> int:
        return _RANK[self.severity]


@contract
class ActionResult(Contract):
    """The outcome of ``coach.execute``: done at once, or a background task to poll."""

    kind: str
    status: str  # done | started
    task_id: str | None
    result: dict[str, Any]
