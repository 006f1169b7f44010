"""Which fields of a canonical record are human text, and how to edit them safely.

Only human text is normalised or masked; labels, tags, categories, titles used as keys, media
paths and roles are never touched. Three field kinds need care:

- Tool turns (role "tool") and JSON-looking message content (function calls) are scanned and
  masked but not normalised, so the JSON stays byte-for-byte what the model must emit.
- RAG passages are scanned and masked only: ``supporting`` points at sentences inside them.
- Fields with character offsets (extractive_qa context + answers, span_extraction text +
  spans) are cut at every offset and each piece is normalised on its own. The new offsets are
  the joined piece lengths, and they are used only if the pieces join up to exactly the
  normalised whole field; otherwise the field is left unedited ("kept_unedited"). Masking
  works the same way; a finding that straddles an offset cannot be masked safely and marks
  the record ``unmaskable`` (the pipeline then drops it under the mask policy). An offset is
  never rewritten to a wrong value.

All PII spans are ``[start, end)`` in the field's text after normalisation, before masking.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..contracts.shapes import CHAT_SHAPES
from .pii import Finding, detect, mask
from .text import normalise


@dataclass
class EditOptions:
    html_markup: bool = True
    unicode_nfkc: bool = True
    whitespace: bool = True
    pii_types: tuple[str, ...] | None = None  # None: no PII scan
    mask_template: str | None = None  # set: mask what is found

    def norm(self, text: str, strip_ends: bool = True) -> tuple[str, list[str]]:
        return normalise(text, html_markup=self.html_markup, unicode_nfkc=self.unicode_nfkc,
                         whitespace=self.whitespace, strip_ends=strip_ends)

    def find(self, text: str) -> list[Finding]:
        return detect(text, self.pii_types) if self.pii_types else []


@dataclass
class RecordOutcome:
    record: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    offsets: str | None = None  # "remapped" | "kept_unedited" | None (no offsets)
    unmaskable: bool = False

    def add(self, path: str, findings: list[Finding]) -> None:
        self.findings.extend({**f.to_dict(), "field": path} for f in findings)


def _is_json(text: str) -> bool:
    s = text.lstrip()
    if not s or s[0] not in "{[":
        return False
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


Setter = Callable[[str], None]


def _messages(msgs: Any, prefix: str) -> Iterator[tuple[str, str, Setter, bool]]:
    for i, m in enumerate(msgs if isinstance(msgs, list) else []):
        if isinstance(m, dict) and isinstance(m.get("content"), str):
            raw = m.get("role") == "tool" or _is_json(m["content"])
            yield f"{prefix}[{i}].content", m["content"], (lambda v, m=m: m.__setitem__("content", v)), raw


def _key(rec: dict[str, Any], key: str, raw: bool = False) -> Iterator[tuple[str, str, Setter, bool]]:
    if isinstance(rec.get(key), str):
        yield key, rec[key], (lambda v: rec.__setitem__(key, v)), raw


def text_fields(shape: str, rec: dict[str, Any]) -> Iterator[tuple[str, str, Setter, bool]]:
    """(path, text, setter, raw) for every plain human-text field; raw = scan/mask only."""
    if shape in CHAT_SHAPES or shape == "vision_language":
        yield from _messages(rec.get("messages"), "messages")
    elif shape in ("text", "classification", "safety", "audio_transcript"):
        yield from _key(rec, "text")
    elif shape == "seq2seq":
        yield from _key(rec, "source")
        yield from _key(rec, "target")
    elif shape == "preference":
        yield from _messages(rec.get("prompt"), "prompt")
        yield from _key(rec, "chosen")
        yield from _key(rec, "rejected")
    elif shape == "kto":
        yield from _messages(rec.get("prompt"), "prompt")
        yield from _key(rec, "completion")
    elif shape == "extractive_qa":
        yield from _key(rec, "question")
    elif shape == "rag":
        yield from _key(rec, "question")
        yield from _key(rec, "answer")
        for i, p in enumerate(rec.get("passages") or []):
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                yield f"passages[{i}].text", p["text"], (lambda v, p=p: p.__setitem__("text", v)), True


def _edit_plain(out: RecordOutcome, path: str, text: str, setter: Setter, raw: bool,
                opts: EditOptions) -> None:
    new = text
    if not raw:
        new, steps = opts.norm(text)
        if new.strip() or not text.strip():
            out.steps.update(steps)
        else:
            new = text  # markup-only text: emptying a field would break the record's shape
    found = opts.find(new)
    out.add(path, found)
    if found and opts.mask_template:
        new = mask(new, found, opts.mask_template)
    if new != text:
        setter(new)


def _edit_offsets(out: RecordOutcome, path: str, text: str, cuts: set[int],
                  opts: EditOptions) -> tuple[str, dict[int, int]] | None:
    """Edit an offset-bearing field piecewise. Returns (new text, old->new offset map), or
    None when the field must stay as it is (then it is still scanned)."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    normed = [opts.norm(p, strip_ends=False)[0] for p in pieces]
    whole, steps = opts.norm(text, strip_ends=False)
    if "".join(normed) != whole:
        normed = pieces  # an edit crosses an offset: leave the field as it was
        out.offsets = "kept_unedited"
    else:
        out.steps.update(steps)
        out.offsets = "remapped"
    joined = "".join(normed)
    found = opts.find(joined)
    out.add(path, found)
    if found and opts.mask_template:
        starts = [0]
        for p in normed:
            starts.append(starts[-1] + len(p))
        per_piece: list[list[Finding]] = [[] for _ in normed]
        for f in found:
            i = next((i for i in range(len(normed)) if starts[i] <= f.start and f.end <= starts[i + 1]),
                     None)
            if i is None:
                out.unmaskable = True
                return None
            per_piece[i].append(Finding(f.type, f.start - starts[i], f.end - starts[i], f.recognizer))
        normed = [mask(p, fs, opts.mask_template) if fs else p for p, fs in zip(normed, per_piece,
                                                                                 strict=False)]
    new_starts = [0]
    for p in normed:
        new_starts.append(new_starts[-1] + len(p))
    return "".join(normed), dict(zip(bounds, new_starts, strict=False))


def _edit_qa(out: RecordOutcome, rec: dict[str, Any], opts: EditOptions) -> None:
    ctx, answers = rec.get("context"), rec.get("answers")
    if not isinstance(ctx, str) or not isinstance(answers, list):
        return
    valid = all(
        isinstance(a, dict) and isinstance(a.get("text"), str) and isinstance(a.get("start"), int)
        and 0 <= a["start"] and ctx[a["start"] : a["start"] + len(a["text"])] == a["text"]
        for a in answers
    )
    if not valid:  # offsets already wrong upstream: do not build on them
        out.offsets = "kept_unedited"
        found = opts.find(ctx)
        out.add("context", found)
        if found and opts.mask_template:
            out.unmaskable = True
        return
    cuts = {a["start"] for a in answers} | {a["start"] + len(a["text"]) for a in answers}
    edited = _edit_offsets(out, "context", ctx, cuts, opts)
    if edited is None or out.offsets == "kept_unedited" and edited[0] == ctx:
        return
    new_ctx, pos = edited
    new_answers = []
    for a in answers:
        s, e = pos[a["start"]], pos[a["start"] + len(a["text"])]
        if a["text"] and s == e:  # the answer would vanish: keep the record as it was
            out.offsets = "kept_unedited"
            return
        new_answers.append({**a, "text": new_ctx[s:e], "start": s})
    rec["context"], rec["answers"] = new_ctx, new_answers


def _edit_spans(out: RecordOutcome, rec: dict[str, Any], opts: EditOptions) -> None:
    text, spans = rec.get("text"), rec.get("spans")
    if not isinstance(text, str) or not isinstance(spans, list):
        return
    valid = all(
        isinstance(s, dict) and isinstance(s.get("start"), int) and isinstance(s.get("end"), int)
        and 0 <= s["start"] <= s["end"] <= len(text)
        for s in spans
    )
    if not valid:
        out.offsets = "kept_unedited"
        found = opts.find(text)
        out.add("text", found)
        if found and opts.mask_template:
            out.unmaskable = True
        return
    cuts = {s["start"] for s in spans} | {s["end"] for s in spans}
    edited = _edit_offsets(out, "text", text, cuts, opts)
    if edited is None:
        return
    new_text, pos = edited
    new_spans = [{**s, "start": pos[s["start"]], "end": pos[s["end"]]} for s in spans]
    if any(s["start"] < s["end"] and n["start"] == n["end"] for s, n in zip(spans, new_spans,
                                                                          strict=False)):
        out.offsets = "kept_unedited"
        return
    rec["text"], rec["spans"] = new_text, new_spans


def _edit_tokens(out: RecordOutcome, rec: dict[str, Any], opts: EditOptions) -> None:
    tokens = rec.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return
    new_tokens = []
    for t in tokens:
        n, steps = opts.norm(t)
        if n and " " not in n:  # one token must stay one token (tags align by position)
            new_tokens.append(n)
            out.steps.update(steps)
        else:
            new_tokens.append(t)
    joined = " ".join(new_tokens)
    found = opts.find(joined)
    out.add("tokens", found)
    if found and opts.mask_template:
        pos = 0
        for i, t in enumerate(new_tokens):
            start, end = pos, pos + len(t)
            hit = next((f for f in found if f.start < end and start < f.end), None)
            if hit is not None:
                new_tokens[i] = opts.mask_template.format(type=hit.type.upper())
            pos = end + 1
    if new_tokens != tokens:
        rec["tokens"] = new_tokens


def edit_record(shape: str, record: dict[str, Any], opts: EditOptions) -> RecordOutcome:
    """Normalise and scan (and mask, if asked) the human text of ``record`` IN PLACE."""
    out = RecordOutcome(record=record)
    for path, text, setter, raw in list(text_fields(shape, record)):
        _edit_plain(out, path, text, setter, raw, opts)
    if shape == "extractive_qa":
        _edit_qa(out, record, opts)
    elif shape == "span_extraction":
        _edit_spans(out, record, opts)
    elif shape == "token_classification":
        _edit_tokens(out, record, opts)
    return out
