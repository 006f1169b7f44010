"""Mappers for extraction and retrieval: extractive_qa, token/span extraction, rag."""

from __future__ import annotations

from typing import Any

from ..fields import RowReject, as_text, label_text, lookup, text_field
from .base import MAPPERS


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
        if isinstance(span, list) and len(span) == 3:  # doccano: [start, end, label]
            span = {"start": span[0], "end": span[1], "label": span[2]}
            label_key, start_key, end_key = "label", "start", "end"
        if not isinstance(span, dict):
            raise RowReject("type_mismatch", "a span is neither an object nor [start, end, label]")
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
    supporting = []
    if isinstance(passages, dict) and isinstance(passages.get("passage_text"), list):
        # MS MARCO: {"passage_text": [...], "url": [...], "is_selected": [0/1 ...]}
        texts, urls = passages["passage_text"], passages.get("url") or []
        chosen = passages.get("is_selected") or []
        titles = [str(u) for u in urls] + [""] * (len(texts) - len(urls))
        supporting = [{"title": titles[i], "sentence": 0} for i, s in enumerate(chosen)
                      if s in (1, True) and i < len(texts)]
        passages = [[t, x] for t, x in zip(titles, texts, strict=False)]
    if isinstance(passages, dict) and isinstance(passages.get("title"), list):
        # columnar: {"title": [...], "sentences": [[...], ...]}
        bodies = passages.get("sentences", passages.get("text", []))
        passages = [list(pair) for pair in zip(passages["title"], bodies, strict=False)]
    if not isinstance(passages, list) or not passages:
        raise RowReject("empty_text" if passages == [] else "type_mismatch",
                        "passages should be a non-empty list")
    if options.get("positives_support"):  # DPR: the positive passages are the support
        supporting = [{"title": _passage(p)["title"], "sentence": 0} for p in passages]
    for extra in options.get("negative_passages") or ():  # DPR hard/easy negatives follow
        more = lookup(row, str(extra), default=[]) or []
        if not isinstance(more, list):
            raise RowReject("type_mismatch", f"{extra} should be a list of passages")
        passages = [*passages, *more]
    if "supporting" in field_map:
        raw = lookup(row, field_map["supporting"], default=[]) or []
        if isinstance(raw, dict) and isinstance(raw.get("title"), list):
            raw = [list(pair) for pair in zip(raw["title"], raw.get("sent_id", []), strict=False)]
        supporting = [_support(s) for s in raw]
    return {"question": question, "answer": answer, "passages": [_passage(p) for p in passages],
            "supporting": supporting}
