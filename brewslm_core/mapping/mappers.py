"""One mapper per shape: source row (dict) -> canonical record (see shapes.py), or RowReject.

A mapper is a plain function ``(row, field_map, options, base_dir) -> dict`` registered by
shape name in ``MAPPERS``. ``field_map`` maps canonical field -> source path; ``options``
holds shape switches (label_set, role_key, image_template ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..registry import Registry
from .fields import RowReject, as_text, label_text, lookup, text_field

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


# ---- chat helpers -------------------------------------------------------------------------
def _content_text(content: Any, where: str) -> str:
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
        out.append({"role": role, "content": _content_text(turn[ck], f"{where}[{i}]")})
    return out


def _check_chat(messages: list[dict[str, str]], where: str) -> list[dict[str, str]]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowReject("invalid_role_sequence", f"{where} has no assistant turn")
    if not any(m["role"] == "user" for m in messages):
        raise RowReject("invalid_role_sequence", f"{where} has no user turn")
    if not all(m["content"].strip() for m in messages if m["role"] in ("user", "assistant")):
        raise RowReject("empty_text", f"{where} has an empty user or assistant turn")
    return messages


def _with_system(row: Any, field_map: dict[str, str], messages: list[dict[str, str]]):
    system = text_field(row, field_map, "system", required=False)
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


# ---- generative shapes --------------------------------------------------------------------
@MAPPERS.register("alpaca")
def map_alpaca(row, field_map, options, base_dir=None):
    instruction = text_field(row, field_map, "instruction")
    extra = text_field(row, field_map, "input", required=False)
    output = text_field(row, field_map, "output")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": _with_system(row, field_map, messages)}


def _map_chat(row, field_map, options, base_dir=None):
    path = field_map.get("messages")
    if path is None:
        raise RowReject("missing_field", "no source field is mapped to 'messages'")
    messages = to_messages(lookup(row, path), options, path)
    return {"messages": _check_chat(_with_system(row, field_map, messages), path)}


MAPPERS.register("sharegpt")(_map_chat)
MAPPERS.register("openai_messages")(_map_chat)


@MAPPERS.register("prompt_completion")
def map_prompt_completion(row, field_map, options, base_dir=None):
    prompt = text_field(row, field_map, "prompt")
    completion = text_field(row, field_map, "completion")
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return {"messages": _with_system(row, field_map, messages)}


@MAPPERS.register("text")
def map_text(row, field_map, options, base_dir=None):
    return {"text": text_field(row, field_map, "text")}


@MAPPERS.register("seq2seq")
def map_seq2seq(row, field_map, options, base_dir=None):
    return {"source": text_field(row, field_map, "source"),
            "target": text_field(row, field_map, "target")}


# ---- labels -------------------------------------------------------------------------------
@MAPPERS.register("classification")
def map_classification(row, field_map, options, base_dir=None):
    text = text_field(row, field_map, "text")
    label = label_text(lookup(row, field_map.get("label", "label")), "label")
    names = options.get("label_names")
    if isinstance(names, dict):
        label = str(names.get(label, label))
    elif isinstance(names, list) and label.isdigit() and int(label) < len(names):
        label = str(names[int(label)])
    label_set = options.get("label_set")
    if label_set and label not in {str(x) for x in label_set}:
        raise RowReject("label_not_in_set", f"label {label!r} is not in the declared label set")
    return {"text": text, "label": label}


_SAFE_WORDS = {"safe", "benign", "neither", "none", "clean", "ok", "not_toxic", "non-toxic", "false",
               "0", "no", "harmless", "normal"}
_UNSAFE_WORDS = {"unsafe", "harmful", "toxic", "hate", "offensive", "abusive", "true", "1", "yes",
                 "spam", "harm"}


@MAPPERS.register("safety")
def map_safety(row, field_map, options, base_dir=None):
    """label: explicit unsafe_values/safe_values options, else safe/unsafe words."""
    text = text_field(row, field_map, "text")
    raw = label_text(lookup(row, field_map.get("label", "label")), "label")
    unsafe_values = {str(v) for v in options.get("unsafe_values") or ()}
    safe_values = {str(v) for v in options.get("safe_values") or ()}
    if raw in unsafe_values:
        label = "unsafe"
    elif raw in safe_values:
        label = "safe"
    elif not unsafe_values and raw.lower() in _UNSAFE_WORDS:
        label = "unsafe"
    elif not safe_values and raw.lower() in _SAFE_WORDS:
        label = "safe"
    else:
        raise RowReject("label_not_in_set", f"label {raw!r} is neither a safe nor an unsafe value")
    categories: list[str] = []
    if "categories" in field_map:
        value = lookup(row, field_map["categories"], default=None)
        if isinstance(value, str):
            value = [c.strip() for c in value.split(",")]
        categories = [str(c) for c in (value or []) if str(c).strip()]
    elif label == "unsafe":
        name = (options.get("label_names") or {}).get(raw, raw)
        categories = [str(name)]
    return {"text": text, "label": label, "categories": categories}


# ---- alignment ----------------------------------------------------------------------------
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
    prompt = _with_system(row, field_map, prompt)
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
    prompt = _with_system(row, field_map, prompt)
    if not any(m["role"] == "user" for m in prompt):
        raise RowReject("invalid_role_sequence", "the prompt has no user turn")
    return {"prompt": prompt, "completion": completion, "label": word in _TRUE}


# ---- extraction ---------------------------------------------------------------------------
def _answer_list(value: Any, options: dict[str, Any]) -> list[tuple[Any, Any]]:
    text_key = options.get("answer_text_key", "text")
    start_key = options.get("answer_start_key", "answer_start")
    if isinstance(value, dict):  # columnar: {"text": [...], "answer_start": [...]}
        texts, starts = value.get(text_key), value.get(start_key)
        if isinstance(texts, list) and isinstance(starts, list):
            if len(texts) != len(starts):
                raise RowReject("length_mismatch", "answers text and answer_start differ in length")
            return list(zip(texts, starts, strict=True))
        value = [value]
    if not isinstance(value, list):
        raise RowReject("type_mismatch", "answers should be a list")
    out = []
    for a in value:
        if not isinstance(a, dict) or text_key not in a or start_key not in a:
            raise RowReject("missing_field", f"an answer lacks {text_key!r} or {start_key!r}")
        out.append((a[text_key], a[start_key]))
    return out


@MAPPERS.register("extractive_qa")
def map_extractive_qa(row, field_map, options, base_dir=None):
    question = text_field(row, field_map, "question")
    context = text_field(row, field_map, "context")
    impossible = "is_impossible" in field_map and lookup(
        row, field_map["is_impossible"], default=False
    ) in (True, "true", "True", "1", 1)
    raw = [] if impossible else _answer_list(
        lookup(row, field_map.get("answers", "answers"), default=[]), options
    )
    answers, seen = [], set()
    for text, start in raw:
        text = as_text(text, "answer text")
        if isinstance(start, str) and start.strip().lstrip("-").isdigit():
            start = int(start)
        if not isinstance(start, int) or isinstance(start, bool):
            raise RowReject("type_mismatch", f"answer start {start!r} is not an integer")
        if start < 0 or start + len(text) > len(context):
            raise RowReject("span_out_of_bounds", f"answer at {start} runs outside the context")
        if context[start:start + len(text)] != text:
            raise RowReject("span_text_mismatch",
                            f"context at {start} reads {context[start:start + len(text)]!r}, "
                            f"not {text!r}")
        if (text, start) not in seen:  # annotators often repeat the same span
            seen.add((text, start))
            answers.append({"text": text, "start": start})
    return {"question": question, "context": context, "answers": answers}


@MAPPERS.register("token_classification")
def map_token_classification(row, field_map, options, base_dir=None):
    tokens = lookup(row, field_map.get("tokens", "tokens"))
    tags = lookup(row, field_map.get("tags", "tags"))
    if isinstance(tokens, str):
        tokens = tokens.split()
    if isinstance(tags, str):
        tags = tags.split()
    if not isinstance(tokens, list) or not isinstance(tags, list):
        raise RowReject("type_mismatch", "tokens and tags should be lists")
    if not tokens:
        raise RowReject("empty_text", "the row has no tokens")
    if len(tokens) != len(tags):
        raise RowReject("length_mismatch", f"{len(tokens)} tokens but {len(tags)} tags")
    names = options.get("tag_names")
    out_tags = []
    for tag in tags:
        if isinstance(tag, int) and not isinstance(tag, bool) and names:
            if not 0 <= tag < len(names):
                raise RowReject("label_not_in_set", f"tag id {tag} has no name in tag_names")
            tag = names[tag]
        out_tags.append(label_text(tag, "tag"))
    return {"tokens": [as_text(t, "token", allow_empty=True) for t in tokens], "tags": out_tags}


@MAPPERS.register("span_extraction")
def map_span_extraction(row, field_map, options, base_dir=None):
    text = text_field(row, field_map, "text")
    spans_raw = lookup(row, field_map.get("spans", "spans"), default=[])
    if spans_raw is None:
        spans_raw = []
    if not isinstance(spans_raw, list):
        raise RowReject("type_mismatch", "spans should be a list")
    label_key = options.get("span_label_key", "label")
    start_key = options.get("span_start_key", "start")
    end_key = options.get("span_end_key", "end")
    missing_start = options.get("missing_start")  # protobuf JSON drops zero-valued keys
    spans = []
    for span in spans_raw:
        if not isinstance(span, dict):
            raise RowReject("type_mismatch", "a span is not an object")
        label = label_text(lookup(span, label_key), "span label")
        start = lookup(span, start_key, default=missing_start)
        if start is None:
            raise RowReject("missing_field", f"a span has no {start_key!r}")
        end = lookup(span, end_key)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise RowReject("type_mismatch", f"span offsets {start!r}..{end!r} are not integers")
        if not 0 <= start < end <= len(text):
            raise RowReject("span_out_of_bounds", f"span {start}..{end} is outside the text")
        spans.append({"label": label, "start": start, "end": end})
    return {"text": text, "spans": spans}


# ---- retrieval ----------------------------------------------------------------------------
def _passage(p: Any) -> dict[str, str]:
    if isinstance(p, str):
        return {"title": "", "text": p}
    if isinstance(p, list) and len(p) == 2:  # [title, [sentences]] or [title, text]
        title, body = p
        body = "".join(map(str, body)) if isinstance(body, list) else body
        return {"title": as_text(title, "passage title", allow_empty=True),
                "text": as_text(body, "passage text")}
    if isinstance(p, dict):
        body = p.get("text", p.get("sentences", p.get("content", p.get("passage_text"))))
        body = "".join(map(str, body)) if isinstance(body, list) else body
        return {"title": as_text(p.get("title", ""), "passage title", allow_empty=True),
                "text": as_text(body, "passage text")}
    raise RowReject("type_mismatch", f"cannot read a passage from a {type(p).__name__}")


def _support(s: Any) -> dict[str, Any]:
    if isinstance(s, list) and len(s) == 2:
        title, idx = s
    elif isinstance(s, dict):
        title, idx = s.get("title", ""), s.get("sentence", s.get("sent_id", 0))
    else:
        raise RowReject("type_mismatch", "a supporting fact should be [title, sentence]")
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise RowReject("type_mismatch", f"supporting sentence index {idx!r} is not an integer")
    return {"title": str(title), "sentence": idx}


@MAPPERS.register("rag")
def map_rag(row, field_map, options, base_dir=None):
    question = text_field(row, field_map, "question")
    answer = text_field(row, field_map, "answer")
    passages = lookup(row, field_map.get("passages", "passages"))
    if isinstance(passages, dict) and isinstance(passages.get("title"), list):
        # columnar: {"title": [...], "sentences": [[...], ...]}
        bodies = passages.get("sentences", passages.get("text", []))
        passages = [list(pair) for pair in zip(passages["title"], bodies, strict=False)]
    if not isinstance(passages, list) or not passages:
        raise RowReject("empty_text" if passages == [] else "type_mismatch",
                        "passages should be a non-empty list")
    supporting = []
    if "supporting" in field_map:
        raw = lookup(row, field_map["supporting"], default=[]) or []
        if isinstance(raw, dict) and isinstance(raw.get("title"), list):
            raw = [list(pair) for pair in zip(raw["title"], raw.get("sent_id", []), strict=False)]
        supporting = [_support(s) for s in raw]
    return {"question": question, "answer": answer, "passages": [_passage(p) for p in passages],
            "supporting": supporting}


# ---- media --------------------------------------------------------------------------------
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
    if options.get("image_template"):
        refs: Any = [_template(str(options["image_template"]), row)]
    else:
        refs = lookup(row, field_map.get("images", "images"))
    if not isinstance(refs, list):
        refs = [refs]
    if not refs:
        raise RowReject("missing_field", "the row references no image")
    images = [media_path(r, base_dir, "image") for r in refs]
    if "messages" in field_map:
        messages = to_messages(lookup(row, field_map["messages"]), options, field_map["messages"])
        messages = _check_chat(messages, field_map["messages"])
    else:
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
    audio = media_path(lookup(row, field_map.get("audio", "path")), base_dir, "audio")
    if "text" in field_map:
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
