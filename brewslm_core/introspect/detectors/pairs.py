"""Detectors for text pairs and retrieval: seq2seq and rag."""

from __future__ import annotations

from typing import Any

from ..profile import FieldStats, SampleProfile
from .base import (
    DETECTORS,
    Detection,
)

SEQ_PAIRS = (("source", "target"), ("src", "tgt"), ("dialogue", "summary"),
             ("document", "summary"), ("article", "highlights"), ("article", "summary"),
             ("text", "summary"), ("input", "output"), ("original", "translation"))


def _language_pair(prof: SampleProfile) -> Detection | None:
    """``{"translation": {"en": …, "ro": …}}`` (WMT/OPUS via datasets): two language keys."""
    for f in prof.fields.values():
        if "." in f.path or not f.values or not all(isinstance(v, dict) and len(v) == 2 and all(
                isinstance(x, str) and x.strip() for x in v.values()) for v in f.values):
            continue
        keys = [tuple(v) for v in f.values]
        if len(set(keys)) != 1 or not all(len(k) <= 5 for k in keys[0]):
            continue
        a, b = keys[0]
        why = (f"{f.path!r} holds the same text in {a!r} and {b!r}: a translation pair, "
               f"{a} -> {b} by key order (swap source/target for the other direction)")
        return Detection(0.9, why, {"source": f"{f.path}.{a}", "target": f"{f.path}.{b}"})
    return None


@DETECTORS.register("seq2seq")
def detect_seq2seq(prof: SampleProfile) -> Detection | None:
    # Sentences, not ids or tags (one token each) and not boilerplate (a shared prefix).
    pair = _language_pair(prof)
    if pair is not None:
        return pair
    named = [f for f in prof.text_fields(min_len=3)
             if f.fill >= 0.9 and f.avg_words > 1 and "." not in f.path]
    by_name = {f.name: f for f in named}
    for a, b in SEQ_PAIRS:
        if a in by_name and b in by_name:
            src, tgt = by_name[a], by_name[b]
            conf = 0.9 if (a, b) != ("input", "output") else 0.55
            why = f"{src.path!r} -> {tgt.path!r} is a {a}/{b} pair"
            if src.common_prefix >= 20:
                why += f" (sources share a {src.common_prefix}-character task prefix)"
            if prof.find(("instruction",)):
                conf = 0.4
            return Detection(conf, why, {"source": src.path, "target": tgt.path})
    texts = [f for f in named if f.common_prefix < 20]
    if len(texts) < 2:
        return None
    # Content: two columns in different scripts, or one much longer than the other.
    ordered = sorted(texts[:4], key=lambda f: list(prof.fields).index(f.path))
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if a.script and b.script and a.script != b.script:
                why = (f"{a.path!r} ({a.script.lower()}) and {b.path!r} ({b.script.lower()}) are "
                       "the same content in two scripts: a translation pair")
                return Detection(0.85, why, {"source": a.path, "target": b.path})
            ratio = max(a.avg_len, b.avg_len) / max(1.0, min(a.avg_len, b.avg_len))
            if ratio >= 3 and min(a.avg_words, b.avg_words) >= 8:
                src, tgt = (a, b) if a.avg_len > b.avg_len else (b, a)
                why = (f"{src.path!r} (avg {src.avg_words:.0f} words) condenses into "
                       f"{tgt.path!r} (avg {tgt.avg_words:.0f} words): a summarisation pair")
                conf = 0.75
                if prof.find(("instruction", "prompt", "question", "query")):
                    conf = 0.45
                    why += "; but an instruction/question field points to a chat shape"
                return Detection(conf, why, {"source": src.path, "target": tgt.path})
    return None


@DETECTORS.register("rag")
def detect_rag(prof: SampleProfile) -> Detection | None:
    question = prof.find(("question", "query", "q"), pred=lambda f: f.is_text)
    if question is None:
        return None
    def many(v: Any) -> bool:  # a list of passages, or columnar {"title": [...], ...}
        if isinstance(v, dict):
            key = "title" if "title" in v else "passage_text"  # MS MARCO: passage_text/url
            return isinstance(v.get(key), list) and len(v[key]) >= 2
        return isinstance(v, list) and len(v) >= 2

    passages = None
    options: dict[str, Any] = {}
    for f in prof.fields.values():
        if f.values and all(many(v) for v in f.values) and f.name in (
                "context", "contexts", "passages", "documents", "docs", "ctxs", "retrieved",
                "paragraphs", "evidence", "searchresults"):
            passages = f
            break
    dpr = prof.find(("positive_ctxs", "positive_passages", "positives"), pred=lambda f: all(
        isinstance(v, list) and v and all(isinstance(p, dict) for p in v) for v in f.values))
    if passages is None and dpr is not None:
        passages = dpr
        options["positives_support"] = True
        negs = [f.path for n in ("hard_negative_ctxs", "negative_ctxs", "negative_passages",
                                 "hard_negatives", "negatives")
                if (f := prof.find((n,))) is not None]
        if negs:
            options["negative_passages"] = negs
    if passages is None:
        return None
    answer = prof.find(("answer", "answers", "output", "response", "long_answer", "final_answer"),
                       pred=lambda f: f.is_text)
    if answer is None:  # DPR/NQ: a list of acceptable answer strings; the first is used
        listed = prof.find(("answers", "answer"), pred=lambda f: all(
            isinstance(v, list) and v and isinstance(v[0], str) for v in f.values))
        if listed is not None:
            answer = FieldStats(f"{listed.path}.0", [v[0] for v in listed.values], listed.rows)
    fmap = {"question": question.path, "passages": passages.path}
    avg = sum(len(v.get("title", v.get("passage_text", [])) if isinstance(v, dict) else v)
              for v in passages.values) / len(passages.values)
    why = [f"{question.path!r} comes with {avg:.0f} passages on average in {passages.path!r}"]
    if options.get("positives_support"):
        why.append("DPR layout: the positive passages are the support"
                   + (f", the negatives ({', '.join(options['negative_passages'])}) follow them"
                      if options.get("negative_passages") else ""))
    conf = 0.7
    if answer:
        fmap["answer"] = answer.path
        conf = 0.93
        why.append(f"{answer.path!r} is the answer")
    support = prof.find(("supporting_facts", "supporting", "support", "gold_passages"))
    if support:
        fmap["supporting"] = support.path
        why.append(f"{support.path!r} names the supporting sentences")
    return Detection(conf, "; ".join(why), fmap, options)
