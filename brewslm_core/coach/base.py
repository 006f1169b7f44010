"""The generator registry and small builders every Coach generator uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contracts.coach import Action, Suggestion
from ..registry import Registry
from .facts import Facts

Generator = Callable[[Facts], list[Suggestion]]
GENERATORS: Registry[Generator] = Registry("coach stage")


def navigate(label: str, target: str, /, **params: Any) -> Action:
    return Action(kind="navigate", label=label, params={"target": target, **params})


def playbook(label: str, name: str, /, **params: Any) -> Action:
    return Action(kind="run_playbook", label=label, params={"playbook": name, **params})


def cluster(label: str, cluster_id: Any, /, **params: Any) -> Action:
    return Action(kind="augment_from_cluster", label=label, params={"cluster_id": cluster_id, **params})


def say(severity: str, title: str, body: str, action: Action) -> Suggestion:
    return Suggestion(severity=severity, title=title, body=body, action=action)


def pct(part: float, whole: float) -> str:
    return f"{(100.0 * part / whole) if whole else 0:.0f}%"


def ordered(items: list[Suggestion]) -> list[Suggestion]:
    """Most important first; the generator's own order breaks ties (sort is stable)."""
    return sorted(items, key=lambda s: s.rank)
