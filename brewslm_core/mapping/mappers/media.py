"""Mappers for media rows: vision_language and audio_transcript (paths made absolute)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..fields import RowReject, as_text, lookup, text_field
from .base import MAPPERS, check_chat, to_messages

# Resolved media per (base_dir, reference) during one map run: many rows share one image.
# map_rows clears it at the start of every run, so a file deleted since is seen as missing.
_MEDIA_SEEN: dict[tuple[str, str], str | None] = {}


def reset_media_cache() -> None:
    _MEDIA_SEEN.clear()


def media_path(value: Any, base_dir: Path | None, what: str) -> str:
    """A media reference -> absolute path string; missing files are media_missing."""
    if isinstance(value, dict):  # {"path": ...} image/audio objects
        value = value.get("path", value.get("file"))
    name = as_text(value, what)
    key = (str(base_dir), name)
    if key not in _MEDIA_SEEN:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        try:
            path = path.resolve()
            _MEDIA_SEEN[key] = str(path) if path.is_file() else None
        except OSError:  # e.g. a name too long for the file system
            _MEDIA_SEEN[key] = None
    found = _MEDIA_SEEN[key]
    if found is None:
        raise RowReject("media_missing", f"{what} {name!r} does not exist (under {base_dir})")
    return found


def _template(template: str, row: Any) -> str:
    try:
        return template.format_map(_RowView(row))
    except (KeyError, IndexError, ValueError) as exc:
        raise RowReject("missing_field",
                        f"template {template!r} needs a missing field: {exc}") from None


class _RowView(dict):
    """format_map view of a row: {col_2} and {a.b} both resolve."""

    def __init__(self, row: Any) -> None:
        super().__init__()
        self.row = row

    def __missing__(self, key: str) -> Any:
        return lookup(self.row, key)


@MAPPERS.register("vision_language")
def map_vision_language(row, field_map, options, base_dir=None):
    in_parts: list[Any] = []
    messages = None
    if "messages" in field_map:
        messages = to_messages(lookup(row, field_map["messages"]), options, field_map["messages"],
                               media=in_parts)
        messages = check_chat(messages, field_map["messages"])
    if options.get("image_template"):
        refs: Any = [_template(str(options["image_template"]), row)]
    elif "images" in field_map or not in_parts:
        refs = lookup(row, field_map.get("images", "images"))
    else:  # images referenced inside the content parts (LLaMA-Factory / OpenAI layouts)
        refs = in_parts
    if not isinstance(refs, list):
        refs = [refs]
    if not refs:
        raise RowReject("missing_field", "the row references no image")
    images = [media_path(r, base_dir, "image") for r in refs]
    if messages is None:
        if "question" in field_map or not options.get("default_question"):
            question = text_field(row, field_map, "question")
        else:  # captions: one fixed instruction for every image
            question = str(options["default_question"])
        answer = text_field(row, field_map, "answer")
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer}]
    if not any("<image>" in m["content"] for m in messages):
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        placeholder = "<image>" * len(images)
        messages[first] = {"role": "user", "content": placeholder + messages[first]["content"]}
    return {"images": images, "messages": messages}


@MAPPERS.register("audio_transcript")
def map_audio_transcript(row, field_map, options, base_dir=None):
    if options.get("audio_template"):  # LJSpeech: wavs/{id}.wav
        ref: Any = _template(str(options["audio_template"]), row)
    else:
        ref = lookup(row, field_map.get("audio", "path"))
    audio = media_path(ref, base_dir, "audio")
    if "messages" in field_map:  # audios beside a chat: the assistant's reply is the transcript
        turns = to_messages(lookup(row, field_map["messages"]), options, field_map["messages"],
                            media=[])
        replies = [m["content"] for m in turns if m["role"] == "assistant"]
        if not replies:
            raise RowReject("invalid_role_sequence", "the conversation has no assistant reply")
        text = replies[-1]
    elif "text" in field_map:
        text = text_field(row, field_map, "text")
    elif options.get("text_regex"):
        found = re.search(str(options["text_regex"]), Path(audio).name)
        if not found:
            raise RowReject("missing_field", f"file name {Path(audio).name!r} does not match "
                                             f"text_regex {options['text_regex']!r}")
        text = found.group(1) if found.groups() else found.group(0)
    else:
        raise RowReject("missing_field", "map a transcript field to 'text' or set text_regex")
    text = str((options.get("text_map") or {}).get(text, text))
    return {"audio": audio, "text": as_text(text, "transcript")}
