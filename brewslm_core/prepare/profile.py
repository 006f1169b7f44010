"""Which task profile a dataset is prepared for, how it is scored, and what its target is."""

from __future__ import annotations

from typing import Any

from ..contracts.prepare import SCORING_MODES
from ..contracts.reasons import SHAPE_TASK_PROFILE, SHAPES, TASK_PROFILES

LABEL_PROFILES: frozenset[str] = frozenset({"classification", "safety"})

# The record key that carries what a model must produce, per shape.
TARGET_FIELDS: dict[str, str] = {
    "alpaca": "messages",
    "sharegpt": "messages",
    "openai_messages": "messages",
    "prompt_completion": "messages",
    "text": "text",
    "seq2seq": "target",
    "classification": "label",
    "safety": "label",
    "preference": "chosen",
    "kto": "completion",
    "extractive_qa": "answers",
    "token_classification": "tags",
    "span_extraction": "spans",
    "rag": "answer",
    "vision_language": "messages",
    "audio_transcript": "text",
}

# Planned max_length when neither the caller nor the project config sets one. Encoder tasks
# stay short because CPU training cost grows with length; QA needs room for the context.
DEFAULT_MAX_LENGTH: dict[str, int] = {
    "classification": 128,
    "safety": 128,
    "qa": 384,
    "structured_extraction": 256,
    "seq2seq": 512,
    "alignment": 512,
    "rag": 1024,
    "vision_language": 512,
    "audio_transcription": 448,  # whisper's decoder window
}


class ProfileChoice:
    """The outcome of choosing a profile: what to keep, and where the choice came from."""

    def __init__(self, profile: str, shape: str | None, chosen_by: str) -> None:
        self.profile = profile
        self.shape = shape  # a preset may name one shape; then only that shape is kept
        self.chosen_by = chosen_by  # "argument" | "preset" | "inferred"

    @property
    def explicit(self) -> bool:
        return self.chosen_by != "inferred"

    def exclusion_reason(self, row: dict[str, Any]) -> str | None:
        """None when the row belongs to the chosen profile (and shape), else the reason."""
        if row["task_profile"] != self.profile:
            return "other_task_profile"
        if self.shape is not None and row["shape"] != self.shape:
            return "other_shape"
        return None


def parse_choice(name: str) -> tuple[str, str | None] | None:
    """A task profile or a shape name -> (profile, shape or None); None when unknown."""
    if name in TASK_PROFILES:
        return name, None
    if name in SHAPES:
        return SHAPE_TASK_PROFILE[name], name
    return None


def scoring_mode(profile: str, shapes: set[str]) -> str:
    # Slot filling (labelled character spans, one value per slot) is scored field by field;
    # BIO tagging is scored as a set of (label, span) entities.
    if profile == "structured_extraction" and shapes == {"span_extraction"}:
        return "field_match"
    return SCORING_MODES[profile]


def label_of(profile: str, record: dict[str, Any]) -> str | None:
    if profile in LABEL_PROFILES:
        return str(record.get("label", ""))
    return None


def stratum_of(profile: str, shape: str, record: dict[str, Any]) -> str | None:
    """What the split is stratified by: the label, QA answerability, or the KTO verdict."""
    if profile in LABEL_PROFILES:
        return str(record.get("label", ""))
    if shape == "extractive_qa":
        return "answerable" if record.get("answers") else "unanswerable"
    if shape == "kto":
        return "desirable" if record.get("label") else "undesirable"
    return None


def dominant(counter: dict[str, int]) -> str:
    """The most common key; ties go to the alphabetically first so the result is stable."""
    best = max(counter.values())
    return min(k for k, v in counter.items() if v == best)
