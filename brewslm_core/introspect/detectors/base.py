"""Shared pieces of the shape detectors: the Detection result, the registry, name lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...registry import Registry
from ..profile import FieldStats, SampleProfile, norm


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
         "tag", "y", "classlabel", "labeltext", "goldlabel", "quality")
TEXT = ("text", "sentence", "content", "tweet", "message", "review", "utterance", "document",
        "body", "comment", "query", "input", "sms")
HARM = ("hate", "toxic", "offensive", "harm", "unsafe", "abuse", "abusive", "insult", "threat",
        "obscene", "jailbreak", "nsfw", "violence", "selfharm", "safety")
SAFE_NAMES = ("neither", "none", "safe", "clean", "normal", "benign", "harmless", "ok")
CHOSEN = ("chosen", "preferred", "responsechosen", "chosenresponse", "better", "win",
          "chosenmessages", "responsej")  # response_j: stack-exchange paired's preferred answer
REJECTED = ("rejected", "dispreferred", "responserejected", "rejectedresponse", "worse", "lose",
            "rejectedmessages", "responsek")
SAFETY_FLAGS = {"issafe": "safe", "safe": "safe", "isunsafe": "unsafe", "unsafe": "unsafe",
                "isharmful": "unsafe", "harmful": "unsafe", "flagged": "unsafe", "istoxic": "unsafe",
                "toxic": "unsafe", "promptharmful": "unsafe", "isjailbreak": "unsafe"}
HARM_CATEGORY = ("category", "categories", "harmcategory", "harmcategories", "violation",
                 "violations", "hazard", "hazardcategory", "riskcategory", "harmtype")
HARM_VALUE_WORDS = ("violent", "crime", "harass", "sexual", "weapon", "hate", "drug", "fraud",
                    "terror", "suicide", "privacy", "exploit")
SAFETY_WORDS = {"safe", "unsafe", "harmful", "harmless", "toxic", "nontoxic", "benign", "jailbreak",
                "hate", "offensive"}
USER_ROLES = {"human", "user", "prompter"}
BOT_ROLES = {"gpt", "assistant", "bot", "model", "chatgpt"}


def pct(x: float) -> str:
    return f"{round(100 * x)}%"


def turn_keys(prof: SampleProfile) -> tuple[FieldStats, str, str] | None:
    """The field holding chat turns, with its role and content keys (never a chosen/rejected
    side of a preference pair)."""
    sides = {norm(n) for n in CHOSEN + REJECTED}
    for f in prof.fields.values():
        if not prof.list_of_dicts(f) or f.name in sides:
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


IMAGE_PARTS = {"image", "image_url", "input_image"}
AUDIO_PARTS = {"audio", "input_audio", "audio_url"}


def content_parts(f: FieldStats, ck: str) -> list[dict[str, Any]]:
    """Every content part (``{"type": …}``) inside the sampled turns of a turns field."""
    return [p for turns in f.values for t in turns if isinstance(t.get(ck), list)
            for p in t[ck] if isinstance(p, dict)]


def part_refs(parts: list[dict[str, Any]], kinds: set[str]) -> list[str]:
    out = []
    for p in parts:
        kind = str(p.get("type", ""))
        if kind not in kinds:
            continue
        for key in ("value", kind, "url", "path"):
            ref = p.get(key)
            ref = ref.get("url", ref.get("path")) if isinstance(ref, dict) else ref
            if isinstance(ref, str) and ref:
                out.append(ref)
                break
    return out


def bool_field(prof: SampleProfile, f: FieldStats) -> bool:
    return bool(f.values) and (f.share("bool") == 1.0 or {str(v).lower() for v in f.values}
                               <= {"true", "false"})


def safety_signal(prof: SampleProfile) -> str | None:
    """Why a sheet reads as safety data: a safe/unsafe flag column, safe/unsafe label values, or a
    harm-category column. None when there is no such sign."""
    for f in prof.fields.values():
        if "." in f.path or not f.values:
            continue
        if f.name in SAFETY_FLAGS and (bool_field(prof, f) or f.int_like):
            return f"{f.path!r} is a {SAFETY_FLAGS[f.name]}/not flag"
        values = {norm(str(v)) for v in f.values}
        if f.label_like and len(values) >= 2 and values <= SAFETY_WORDS | {"0", "1"} and \
                values & SAFETY_WORDS:
            return f"{f.path!r} holds safe/unsafe values {sorted(values)}"
        if f.name in HARM_CATEGORY and f.label_like and any(
                has_harm(v) or any(w in v for w in HARM_VALUE_WORDS) for v in values):
            return f"{f.path!r} names harm categories"
    return None
