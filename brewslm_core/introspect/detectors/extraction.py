"""Detectors for extraction: extractive_qa, token_classification, span_extraction."""

from __future__ import annotations

import re
from typing import Any

from ..profile import FieldStats, SampleProfile, norm
from .base import (
    DETECTORS,
    TEXT,
    Detection,
    get_path,
    pct,
)


@DETECTORS.register("extractive_qa")
def detect_extractive_qa(prof: SampleProfile) -> Detection | None:
    question = prof.find(("question", "query", "q"), pred=lambda f: f.is_text)
    context = prof.find(("context", "passage", "paragraph", "document", "text"),
                        pred=lambda f: f.is_text and question is not None
                        and f.avg_len > question.avg_len)
    if question is None or context is None:
        return None
    answers = prof.find(("answers", "answer", "spans"), pred=lambda f: not f.is_text)
    fmap = {"question": question.path, "context": context.path}
    why = [f"{question.path!r} asks about the passage in {context.path!r}"]
    conf = 0.5
    options: dict[str, Any] = {}
    if answers:
        fmap["answers"] = answers.path
        checked = found = 0
        for row in prof.rows:
            ans, ctx = row.get(answers.path), row.get(context.path)
            items = []
            if isinstance(ans, dict) and isinstance(ans.get("text"), list):
                items = list(zip(ans["text"], ans.get("answer_start", []), strict=False))
            elif isinstance(ans, list):
                items = [(a.get("text"), a.get("answer_start", a.get("start")))
                         for a in ans if isinstance(a, dict)]
                if any("start" in a and "answer_start" not in a for a in ans if isinstance(a, dict)):
                    options["answer_start_key"] = "start"
            for text, start in items:
                checked += 1
                if isinstance(ctx, str) and isinstance(start, int) and ctx[start:].startswith(
                        str(text)):
                    found += 1
        if checked:
            conf = 0.6 + 0.35 * found / checked
            why.append(f"{found}/{checked} sampled answers sit in the context at their offset")
        else:
            conf = 0.75
            why.append(f"{answers.path!r} is empty in the sample (unanswerable questions?)")
    imp = prof.find(("is_impossible", "unanswerable"))
    if imp:
        fmap["is_impossible"] = imp.path
        why.append(f"{imp.path!r} marks unanswerable questions")
    return Detection(conf, "; ".join(why), fmap, options)


@DETECTORS.register("token_classification")
def detect_token_classification(prof: SampleProfile) -> Detection | None:
    def is_str_list(f: FieldStats) -> bool:
        return bool(f.values) and all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                      for v in f.values)

    tokens = prof.find(("tokens", "words", "token", "toks"), pred=is_str_list)
    if tokens is None:
        return None
    tags = None
    for f in prof.fields.values():
        if f.path == tokens.path or not f.values:
            continue
        if all(isinstance(v, list) and len(v) == len(row_t) for v, row_t in
               zip(f.values, tokens.values, strict=False)) and len(f.values) == len(tokens.values):
            tags = f if tags is None or f.name in ("tags", "nertags", "labels") else tags
    if tags is None:
        return None
    flat = [x for v in tags.values for x in v]
    options: dict[str, Any] = {}
    if all(isinstance(x, str) for x in flat):
        bio = sum(bool(re.fullmatch(r"[BIOESLU]([-_].+)?", x)) for x in flat) / max(1, len(flat))
        conf = 0.8 + 0.15 * bio
        why = f"{tokens.path!r} and {tags.path!r} are parallel lists; {pct(bio)} of tags are BIO"
    else:
        conf = 0.82
        why = (f"{tokens.path!r} and {tags.path!r} are parallel lists; tags are integer ids "
               "(set tag_names to name them)")
    return Detection(conf, why, {"tokens": tokens.path, "tags": tags.path}, options)


def _span_keys(spans: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """(label_key, start_key, end_key) paths inside span objects, e.g. valueSpan.startIndex."""
    paths: dict[str, set[str]] = {}
    for s in spans:
        for k, v in s.items():
            if isinstance(v, dict):
                for sk, sv in v.items():
                    paths.setdefault(f"{k}.{sk}", set()).add(type(sv).__name__)
            else:
                paths.setdefault(k, set()).add(type(v).__name__)
    start = next((p for p in paths if re.search(r"(start|begin)", p, re.I)), None)
    end = next((p for p in paths if re.search(r"end", p, re.I) and p != start), None)
    label = next((p for p in paths if norm(p.rsplit(".", 1)[-1]) in
                  ("label", "slot", "type", "entity", "tag", "category", "entitytype")), None)
    if end is None or label is None:
        return None
    if start is None:  # every span omitted it: protobuf drops zeros
        start = re.sub("end", "start", end, flags=re.I)
        start = start if start != end else "start"
    return label, start, end


def _triple(x: Any) -> bool:
    return (isinstance(x, list) and len(x) == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in x[:2]) and isinstance(x[2], str))


def _triple_spans(prof: SampleProfile) -> Detection | None:
    """doccano's sequence-labelling export: ``"label": [[start, end, "LABEL"], …]``."""
    for f in prof.fields.values():
        if not f.values or not all(isinstance(v, list) and all(_triple(x) for x in v)
                                   for v in f.values) or not any(f.values):
            continue
        text = prof.find(TEXT, pred=lambda t: t.is_text) or next(
            iter(prof.text_fields(min_len=5)), None)
        if text is None:
            return None
        ok = total = 0
        for row in prof.rows:
            txt = get_path(row, text.path)
            for st, en, _ in row.get(f.path) or []:
                total += 1
                ok += isinstance(txt, str) and 0 <= st < en <= len(txt)
        conf = 0.6 + 0.3 * ok / total if total else 0.6
        why = (f"{f.path!r} holds [start, end, label] spans (doccano layout) over {text.path!r}; "
               f"{ok}/{total} sampled spans fall inside the text")
        return Detection(conf, why, {"text": text.path, "spans": f.path})
    return None


@DETECTORS.register("span_extraction")
def detect_span_extraction(prof: SampleProfile) -> Detection | None:
    triples = _triple_spans(prof)
    if triples is not None:
        return triples
    for f in prof.fields.values():
        if not f.values or not all(isinstance(v, list) and all(isinstance(x, dict) for x in v)
                                   for v in f.values):
            continue
        spans = [x for v in f.values for x in v]
        keys = _span_keys(spans) if spans else None
        if keys is None:
            continue
        label_key, start_key, end_key = keys
        text = prof.find(TEXT + ("userinput.text",), pred=lambda t: t.is_text) or next(
            iter(prof.text_fields(min_len=5)), None)
        if text is None:
            return None
        options: dict[str, Any] = {"span_label_key": label_key, "span_start_key": start_key,
                                   "span_end_key": end_key}
        why = [f"{f.path!r} holds spans ({label_key!r}, {start_key!r}..{end_key!r}) over "
               f"{text.path!r}"]
        missing = sum(1 for s in spans if get_path(s, start_key) is None)
        if missing or re.search(r"[a-z]Index$", start_key):
            options["missing_start"] = 0
            why.append(f"{missing} spans omit the start (protobuf JSON drops zeros: missing = 0)")
        ok = total = 0
        for row in prof.rows:
            txt = get_path(row, text.path)
            for s in row.get(f.path) or []:
                total += 1
                st = get_path(s, start_key) or 0
                en = get_path(s, end_key)
                ok += isinstance(txt, str) and isinstance(en, int) and 0 <= st < en <= len(txt)
        conf = 0.6 + 0.3 * ok / total if total else 0.6
        why.append(f"{ok}/{total} sampled spans fall inside the text")
        if f.fill < 1:
            why.append(f"{pct(1 - f.fill)} of rows carry no spans (kept, as rows with none)")
        return Detection(conf, "; ".join(why), {"text": text.path, "spans": f.path}, options)
    return None
