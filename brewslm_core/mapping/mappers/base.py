"""Shared pieces of the mappers: the registry and chat-turn helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...registry import Registry
from ..fields import RowReject, as_text, text_field

Mapper = Callable[[Any, dict[str, str], dict[str, Any], "Path | None"], dict[str, Any]]
MAPPERS: Registry[Mapper] = Registry("mapper")

# Source role names seen in the wild -> canonical chat roles.
DEFAULT_ROLE_MAP: dict[str, str] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",
    "tool_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}


def content_text(content: Any, where: str) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
        if len(texts) != len(content):
            raise RowReject("type_mismatch", f"{where} holds non-text content parts")
        return "".join(texts)
    return as_text(content, where, allow_empty=True)


def to_messages(value: Any, options: dict[str, Any], where: str) -> list[dict[str, str]]:
    """A list of turn objects (any role/content key names) -> canonical messages."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowReject("type_mismatch", f"{where} should be a list of turns")
    role_key = options.get("role_key", "role")
    content_key = options.get("content_key", "content")
    role_map = {**DEFAULT_ROLE_MAP, **(options.get("role_map") or {})}
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RowReject("type_mismatch", f"{where}[{i}] is not a turn object")
        rk = role_key if role_key in turn else ("from" if "from" in turn else "role")
        ck = content_key if content_key in turn else ("value" if "value" in turn else "content")
        if rk not in turn or ck not in turn:
            raise RowReject("missing_field", f"{where}[{i}] has no {role_key!r}/{content_key!r}")
        role = role_map.get(str(turn[rk]).strip().lower())
        if role is None:
            raise RowReject("invalid_role_sequence", f"{where}[{i}] has unknown role {turn[rk]!r}")
        out.append({"role": role, "content": content_text(turn[ck], f"{where}[{i}]")})
    return out


def check_chat(messages: list[dict[str, str]], where: str) -> list[dict[str, str]]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowReject("invalid_role_sequence", f"{where} has no assistant turn")
    if not any(m["role"] == "user" for m in messages):
        raise RowReject("invalid_role_sequence", f"{where} has no user turn")
    if not all(m["content"].strip() for m in messages if m["role"] in ("user", "assistant")):
        raise RowReject("empty_text", f"{where} has an empty user or assistant turn")
    return messages


def with_system(row: Any, field_map: dict[str, str], messages: list[dict[str, str]]):
    system = text_field(row, field_map, "system", required=False)
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages
