"""Shared pieces of the mappers: the registry and chat-turn helpers."""

from __future__ import annotations

import json
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


IMAGE_PARTS = frozenset({"image", "image_url", "input_image"})
AUDIO_PARTS = frozenset({"audio", "input_audio", "audio_url"})
VIDEO_PARTS = frozenset({"video", "video_url"})
CALL_PARTS = frozenset({"tool_call", "function_call", "tool_calls"})


def part_ref(part: dict[str, Any]) -> Any:
    """The media reference of an image/audio part: ``value``/``image``/``image_url.url``/…"""
    kind = str(part.get("type", ""))
    for key in ("value", kind, "url", "path", "image", "audio"):
        ref = part.get(key)
        if isinstance(ref, dict):
            ref = ref.get("url", ref.get("path"))
        if isinstance(ref, str) and ref:
            return ref
    raise RowReject("missing_field", f"a {kind!r} content part has no reference")


def content_text(content: Any, where: str, media: list[Any] | None = None) -> str:
    """A turn's content as text. Content parts (LLaMA-Factory / OpenAI layouts) are joined:
    text parts as their ``text``/``value``, tool calls as their JSON, images and audio as
    ``<image>``/``<audio>`` placeholders whose references go to ``media`` (when the shape
    keeps media; otherwise a media part is a type mismatch)."""
    if not isinstance(content, list):
        return as_text(content, where, allow_empty=True)
    out = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, dict):
            raise RowReject("type_mismatch", f"{where} part {i} is not an object")
        kind = str(part.get("type", "text"))
        if kind in IMAGE_PARTS | AUDIO_PARTS | VIDEO_PARTS:
            if media is None:
                raise RowReject("type_mismatch", f"{where} holds a {kind!r} part, which this shape "
                                                 "cannot keep (map it as vision_language)")
            media.append(part_ref(part))
            out.append("<image>" if kind in IMAGE_PARTS else "<audio>" if kind in AUDIO_PARTS
                       else "<video>")
            continue
        value = part.get("text", part.get("value", part.get(kind)))
        if kind in CALL_PARTS and not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        if not isinstance(value, str):
            raise RowReject("type_mismatch", f"{where} part {i} ({kind!r}) holds no text")
        out.append(value)
    return "".join(out)


def to_messages(value: Any, options: dict[str, Any], where: str,
                media: list[Any] | None = None) -> list[dict[str, str]]:
    """A list of turn objects (any role/content key names) -> canonical messages.

    ``media`` collects image/audio references found in content parts (see content_text)."""
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
        content = content_text(turn[ck], f"{where}[{i}]", media)
        calls = turn.get("tool_calls") or turn.get("function_call")
        if calls and not content.strip():  # OpenAI layout: the call is the assistant's content
            content = json.dumps(calls, ensure_ascii=False)
        out.append({"role": role, "content": content})
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


def tools_of(row: Any, field_map: dict[str, str]) -> list[Any] | None:
    """The tool definitions beside a conversation (glaive/LLaMA-Factory ``tools``), as a list.

    A JSON string is parsed; an empty value gives None (no tools). Bad JSON is type_mismatch.
    """
    path = field_map.get("tools")
    if path is None:
        return None
    from ..fields import lookup

    value = lookup(row, path, default=None)
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RowReject("type_mismatch", f"tools ({path}) is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowReject("type_mismatch", f"tools ({path}) should be a list of tool definitions")
    return value
