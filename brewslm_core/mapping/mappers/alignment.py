"""Mappers for preference data: preference (paired) and kto (unpaired)."""

from __future__ import annotations

import re
from typing import Any

from ..fields import RowReject, as_text, label_text, lookup
from .base import MAPPERS, to_messages, with_system

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def _transcript_turns(text: str) -> list[dict[str, str]] | None:
    """'\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts -> messages (None if not one)."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()}
            for i in range(1, len(parts) - 1, 2)]


def _response(value: Any, options: dict[str, Any], where: str):
    """A chosen/rejected side -> (prompt messages before it or None, response text)."""
    if isinstance(value, str):
        turns = _transcript_turns(value)
        if turns and turns[-1]["role"] == "assistant":
            return turns[:-1], turns[-1]["content"]
        return None, as_text(value, where)
    messages = to_messages(value, options, where)
    if not messages or messages[-1]["role"] != "assistant":
        raise RowReject("invalid_role_sequence", f"{where} does not end with an assistant turn")
    if not messages[-1]["content"].strip():
        raise RowReject("empty_text", f"{where} is empty")
    return messages[:-1], messages[-1]["content"]


def _prompt(row, field_map, options, fallback):
    if "prompt" in field_map:
        value = lookup(row, field_map["prompt"])
        if isinstance(value, str):
            return [{"role": "user", "content": as_text(value, "prompt")}]
        return to_messages(value, options, field_map["prompt"])
    if fallback:
        return fallback
    raise RowReject("missing_field", "no prompt field is mapped and the responses hold none")


@MAPPERS.register("preference")
def map_preference(row, field_map, options, base_dir=None):
    before_c, chosen = _response(lookup(row, field_map.get("chosen", "chosen")), options, "chosen")
    before_r, rejected = _response(
        lookup(row, field_map.get("rejected", "rejected")), options, "rejected"
    )
    prompt = _prompt(row, field_map, options, before_c or before_r)
    prompt = with_system(row, field_map, prompt)
    if not any(m["role"] == "user" for m in prompt):
        raise RowReject("invalid_role_sequence", "the prompt has no user turn")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


_TRUE = {"true", "1", "yes", "good", "desirable", "chosen", "positive"}
_FALSE = {"false", "0", "no", "bad", "undesirable", "rejected", "negative"}


@MAPPERS.register("kto")
def map_kto(row, field_map, options, base_dir=None):
    raw = lookup(row, field_map.get("label", "label"))
    word = label_text(raw).lower()
    if word not in _TRUE | _FALSE:
        raise RowReject("label_not_in_set", f"kto label {raw!r} is not a true/false value")
    if "completion" in field_map:
        before, completion = _response(lookup(row, field_map["completion"]), options, "completion")
        prompt = _prompt(row, field_map, options, before)
    else:
        path = field_map.get("messages", "messages")
        before, completion = _response(lookup(row, path), options, path)
        prompt = before
    prompt = with_system(row, field_map, prompt)
    if not any(m["role"] == "user" for m in prompt):
        raise RowReject("invalid_role_sequence", "the prompt has no user turn")
    return {"prompt": prompt, "completion": completion, "label": word in _TRUE}
