"""Canonical records per shape, and the "document text" every later stage reads.

Every stage from map on reads these records, so they live with the contracts (issue 13);
``brewslm_core.mapping.shapes`` re-exports them under the old name.

A committed row's ``record`` (see ``mapping.store.read_committed``) has exactly these keys;
all strings are ``str``, lists are JSON arrays:

=====================  ============================================================================
shape                  record
=====================  ============================================================================
alpaca, sharegpt,      ``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str}]}``
openai_messages,       (alpaca: instruction + "\\n\\n" + input -> user, output -> assistant;
prompt_completion      tool / function-call turns keep role "tool" / "assistant", content as given;
                       chats with tool definitions add ``"tools": [tool objects]``)
text                   ``{"text": str}``
seq2seq                ``{"source": str, "target": str}``
classification         ``{"text": str, "label": str}``  (labels are always strings: 0 -> "0";
                       sentence pairs add ``"text_pair": str``)
safety                 ``{"text": str, "label": "safe"|"unsafe", "categories": [str, ...]}``
preference             ``{"prompt": [messages...], "chosen": str, "rejected": str}``
kto                    ``{"prompt": [messages...], "completion": str, "label": bool}``
extractive_qa          ``{"question": str, "context": str, "answers": [{"text": str, "start": int}]}``
                       (an empty answers list means unanswerable)
token_classification   ``{"tokens": [str, ...], "tags": [str, ...]}``  (BIO tags as strings)
span_extraction        ``{"text": str, "spans": [{"label": str, "start": int, "end": int}]}``
                       (character offsets, end-exclusive)
rag                    ``{"question": str, "answer": str, "passages": [{"title": str, "text": str}],
                       "supporting": [{"title": str, "sentence": int}]}``
vision_language        ``{"images": [absolute path, ...], "messages": [...]}``
                       (user content may hold "<image>" placeholders, one per image)
audio_transcript       ``{"audio": absolute path, "text": str}``
=====================  ============================================================================

``record_text`` gives the human-readable text of a record (what Clean scans, dedups and chunks);
``text_hash`` is the dedup/leakage key the map stage stores with every row.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .reasons import SHAPE_TASK_PROFILE, SHAPES

CHAT_SHAPES: frozenset[str] = frozenset({"alpaca", "sharegpt", "openai_messages", "prompt_completion"})
MEDIA_SHAPES: frozenset[str] = frozenset({"vision_language", "audio_transcript"})
CHAT_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})

# Keys each canonical record carries (validated before a row is committed).
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    **{shape: ("messages",) for shape in CHAT_SHAPES},
    "text": ("text",),
    "seq2seq": ("source", "target"),
    "classification": ("text", "label"),
    "safety": ("text", "label", "categories"),
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "extractive_qa": ("question", "context", "answers"),
    "token_classification": ("tokens", "tags"),
    "span_extraction": ("text", "spans"),
    "rag": ("question", "answer", "passages", "supporting"),
    "vision_language": ("images", "messages"),
    "audio_transcript": ("audio", "text"),
}


class UnknownShapeError(ValueError):
    """A shape name outside contracts.reasons.SHAPES."""


def check_shape(shape: str) -> str:
    if shape not in SHAPES:
        import difflib

        close = difflib.get_close_matches(shape, SHAPES, n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownShapeError(f"unknown shape {shape!r}{hint} (known: {', '.join(SHAPES)})")
    return shape


def task_profile(shape: str) -> str:
    return SHAPE_TASK_PROFILE[check_shape(shape)]


def _messages_text(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m.get("content", "")) for m in messages if str(m.get("content", "")).strip()]


def record_text(shape: str, record: dict[str, Any]) -> str:
    """The human-readable text of a canonical record, parts joined by blank lines.

    Labels, offsets and media paths are not text; answers and passages are.
    """
    check_shape(shape)
    parts: list[str]
    if shape in CHAT_SHAPES:
        parts = _messages_text(record.get("messages", []))
    elif shape == "vision_language":  # the <image> placeholders are markup, not text
        parts = [p.replace("<image>", "").strip() for p in
                 _messages_text(record.get("messages", []))]
    elif shape in ("text", "classification", "safety", "span_extraction", "audio_transcript"):
        parts = [record.get("text", ""), record.get("text_pair", "")]  # sentence pairs: both
    elif shape == "seq2seq":
        parts = [record.get("source", ""), record.get("target", "")]
    elif shape == "preference":
        parts = [*_messages_text(record.get("prompt", [])), record.get("chosen", ""),
                 record.get("rejected", "")]
    elif shape == "kto":
        parts = [*_messages_text(record.get("prompt", [])), record.get("completion", "")]
    elif shape == "extractive_qa":
        parts = [record.get("question", ""), record.get("context", "")]
    elif shape == "token_classification":
        parts = [" ".join(record.get("tokens", []))]
    elif shape == "rag":
        parts = [record.get("question", ""), record.get("answer", "")]
        parts += [p.get("text", "") for p in record.get("passages", [])]
    else:  # pragma: no cover - check_shape covers SHAPES
        raise UnknownShapeError(shape)
    return "\n\n".join(p for p in parts if p)


def text_hash(shape: str, record: dict[str, Any]) -> str:
    """sha256 (hex) identifying a row's content for dedup and train/eval leakage checks.

    It hashes ``record_text``; media shapes add their media paths, because many different
    recordings share one transcript ("zero") and many images share one question.
    """
    return hash_bytes(shape, record).hex()


def hash_bytes(shape: str, record: dict[str, Any]) -> bytes:
    """The raw 32-byte digest behind text_hash."""
    key = record_text(shape, record)
    if shape == "vision_language":
        key = json.dumps([record.get("images", []), key], ensure_ascii=False)
    elif shape == "audio_transcript":
        key = json.dumps([record.get("audio", ""), key], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).digest()
