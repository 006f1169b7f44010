"""Coach Mode: read-only suggestions per workflow stage, and the one place actions run.

    from brewslm_core import coach
    coach.suggest(project, "gold_set")      # -> [Suggestion], most important first
    coach.suggest_all(project)              # -> {stage: [Suggestion]} for all five stages
    coach.execute(project, suggestion.action)   # -> ActionResult (done, or a task id)

Generators read what the stages already wrote (import records, the clean report, the manifest,
RunEvents, run plans and traces, annotation jobs, eval reports) and never write anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..contracts.coach import (
    ACTION_KINDS,
    COACH_SEVERITIES,
    COACH_STAGES,
    Action,
    ActionResult,
    Suggestion,
)
from . import cleaning, data, eval, gold_set, training  # noqa: F401 - register the generators
from .actions import PLAYBOOKS, ActionError, execute
from .base import GENERATORS
from .facts import Facts

if TYPE_CHECKING:
    from ..project import Project


class UnknownStageError(LookupError):
    """A Coach stage nobody registered."""


def suggest(project: Project, stage: str, *, facts: Facts | None = None) -> list[Suggestion]:
    """The suggestions of one stage (data, cleaning, gold_set, training, eval)."""
    if stage not in COACH_STAGES:
        raise UnknownStageError(f"unknown coach stage {stage!r}; expected one of {list(COACH_STAGES)}")
    return GENERATORS.get(stage)(facts or Facts(project))


def suggest_all(project: Project) -> dict[str, list[Suggestion]]:
    facts = Facts(project)
    return {stage: suggest(project, stage, facts=facts) for stage in COACH_STAGES}


__all__ = [
    "ACTION_KINDS",
    "COACH_SEVERITIES",
    "COACH_STAGES",
    "GENERATORS",
    "PLAYBOOKS",
    "Action",
    "ActionError",
    "ActionResult",
    "Facts",
    "Suggestion",
    "UnknownStageError",
    "execute",
    "suggest",
    "suggest_all",
]
