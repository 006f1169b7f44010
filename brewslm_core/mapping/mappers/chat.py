"""Mappers for generative data: alpaca, sharegpt, openai_messages, prompt_completion, text, seq2seq."""

from __future__ import annotations

from ..fields import RowReject, as_text, lookup, text_field
from .base import MAPPERS, check_chat, to_messages, tools_of, with_system


@MAPPERS.register("alpaca")
def map_alpaca(row, field_map, options, base_dir=None):
    instruction = text_field(row, field_map, "instruction")
    extra = text_field(row, field_map, "input", required=False)
    output = text_field(row, field_map, "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [*_history(row, field_map), {"role": "user", "content": user},
                {"role": "assistant", "content": output}]
    return {"messages": with_system(row, field_map, messages)}


def _history(row, field_map) -> list[dict[str, str]]:
    """LLaMA-Factory's alpaca ``history``: [[user, assistant], …] turns before the instruction."""
    if "history" not in field_map:
        return []
    pairs = lookup(row, field_map["history"], default=None) or []
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise RowReject("type_mismatch", "history should be a list of [user, assistant] pairs")
    out = []
    for q, a in pairs:
        out += [{"role": "user", "content": as_text(q, "history user turn")},
                {"role": "assistant", "content": as_text(a, "history assistant turn")}]
    return out


def _map_chat(row, field_map, options, base_dir=None):
    path = field_map.get("messages")
    if path is None:
        raise RowReject("missing_field", "no source field is mapped to 'messages'")
    messages = to_messages(lookup(row, path), options, path)
    record = {"messages": check_chat(with_system(row, field_map, messages), path)}
    tools = tools_of(row, field_map)
    if tools is not None:
        record["tools"] = tools
    return record


MAPPERS.register("sharegpt")(_map_chat)
MAPPERS.register("openai_messages")(_map_chat)


@MAPPERS.register("prompt_completion")
def map_prompt_completion(row, field_map, options, base_dir=None):
    prompt = text_field(row, field_map, "prompt")
    completion = text_field(row, field_map, "completion")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return {"messages": with_system(row, field_map, messages)}


@MAPPERS.register("text")
def map_text(row, field_map, options, base_dir=None):
    return {"text": text_field(row, field_map, "text")}


@MAPPERS.register("seq2seq")
def map_seq2seq(row, field_map, options, base_dir=None):
    return {"source": text_field(row, field_map, "source"),
            "target": text_field(row, field_map, "target")}
