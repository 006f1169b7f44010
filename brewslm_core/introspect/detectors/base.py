"""Shared pieces of the shape detectors: the Detection result, the registry, name lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...registry import Registry
from ..profile import FieldStats, SampleProfile


@dataclass
class Detection:
    confidence: float
    rationale: str
    field_map: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)


Detector = Callable[[SampleProfile], "Detection | None"]
DETECTORS: Registry[Detector] = Registry("shape detector")

INSTRUCTION = ("instruction", "instructions", "query", "prompt", "question", "task")
INPUT = ("input", "context", "inputs")
OUTPUT = ("output", "response", "answer", "completion", "target", "outputs")
LABEL = ("label", "labels", "category", "class", "intent", "target", "sentiment", "topic",
         "tag", "y", "classlabel", "labeltext")
TEXT = ("text", "sentence", "content", "tweet", "message", "review", "utterance", "document",
        "body", "comment", "query", "input", "sms")
HARM = ("hate", "toxic", "offensive", "harm", "unsafe", "abuse", "abusive", "insult", "threat",
        "obscene", "jailbreak", "nsfw", "violence", "selfharm", "safety")
SAFE_NAMES = ("neither", "none", "safe", "clean", "normal", "benign", "harmless", "ok")
CHOSEN = ("chosen", "preferred", "responsechosen", "chosenresponse", "better", "win")
REJECTED = ("rejected", "dispreferred", "responserejected", "rejectedresponse", "worse", "lose")
USER_ROLES = {"human", "user", "prompter"}
BOT_ROLES = {"gpt", "assistant", "bot", "model", "chatgpt"}


def pct(x: float) -> str:
    return f"{round(100 * x)}%"


def turn_keys(prof: SampleProfile) -> tuple[FieldStats, str, str] | None:
    """The field holding chat turns, with its role and content keys."""
    for f in prof.fields.values():
        if not prof.list_of_dicts(f):
            continue
        keys = {k for turns in f.values for t in turns for k in t}
        for rk, ck in (("from", "value"), ("role", "content"), ("speaker", "text"),
                       ("author", "text")):
            if rk in keys and ck in keys:
                return f, rk, ck
    return None


def roles_of(f: FieldStats, rk: str) -> set[str]:
    return {str(t.get(rk, "")).lower() for turns in f.values for t in turns}


def has_harm(name: str) -> bool:
    return any(h in name for h in HARM)


def get_path(obj: Any, path: str) -> Any:
    """Value at a dotted path inside nested dicts, or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system: not a file reference
        return False
