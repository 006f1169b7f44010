"""One detector per shape. Each scores a sample profile from structure AND content.

A detector returns ``Detection`` (confidence in [0, 1], why, field map, options) or None when the
shape plainly does not fit. Scores are calibrated so that a clean, unambiguous file lands at
0.85-0.97 and a guess lands below contracts.reasons.FORCE_THRESHOLD (0.80).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry
from .profile import AUDIO_EXTS, IMAGE_EXTS, FieldStats, SampleProfile, norm


@dataclass
class Detection:
    confidence: float
    rationale: str
    field_map: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)


Detector = Callable[[SampleProfile], "Detection | None"]
DETECTORS: Registry[Detector] = Registry("shape detector")

INSTRUCTION = ("instruction", "instructions", "query", "prompt", "question", "task")
INPUT = ("input", "context", "inputs")
OUTPUT = ("output", "response", "answer", "completion", "target", "outputs")
LABEL = ("label", "labels", "category", "class", "intent", "target", "sentiment", "topic",
         "tag", "y", "classlabel", "labeltext")
TEXT = ("text", "sentence", "content", "tweet", "message", "review", "utterance", "document",
        "body", "comment", "query", "input", "sms")
HARM = ("hate", "toxic", "offensive", "harm", "unsafe", "abuse", "abusive", "insult", "threat",
        "obscene", "jailbreak", "nsfw", "violence", "selfharm", "safety")
SAFE_NAMES = ("neither", "none", "safe", "clean", "normal", "benign", "harmless", "ok")
CHOSEN = ("chosen", "preferred", "responsechosen", "chosenresponse", "better", "win")
REJECTED = ("rejected", "dispreferred", "responserejected", "rejectedresponse", "worse", "lose")
CONVO = ("conversations", "conversation", "messages", "dialog", "chat", "turns", "history")
USER_ROLES = {"human", "user", "prompter"}
BOT_ROLES = {"gpt", "assistant", "bot", "model", "chatgpt"}


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _turn_keys(prof: SampleProfile) -> tuple[FieldStats, str, str] | None:
    """The field holding chat turns, with its role and content keys."""
    for f in prof.fields.values():
        if not prof.list_of_dicts(f):
            continue
        keys = {k for turns in f.values for t in turns for k in t}
        for rk, ck in (("from", "value"), ("role", "content"), ("speaker", "text"),
                       ("author", "text")):
            if rk in keys and ck in keys:
                return f, rk, ck
    return None


def _roles(f: FieldStats, rk: str) -> set[str]:
    return {str(t.get(rk, "")).lower() for turns in f.values for t in turns}


def _has_harm(name: str) -> bool:
    return any(h in name for h in HARM)


# ---- instruction and chat ------------------------------------------------------------------
@DETECTORS.register("alpaca")
def detect_alpaca(prof: SampleProfile) -> Detection | None:
    ins = prof.find(INSTRUCTION, pred=lambda f: f.is_text)
    if ins is None:
        return None
    out = prof.find(OUTPUT, pred=lambda f: f.is_text and f.path != ins.path)
    inp = prof.find(INPUT, pred=lambda f: f.is_text or not f.values)
    fmap = {"instruction": ins.path}
    why = [f"{ins.path!r} holds instructions (avg {ins.avg_words:.0f} words)"]
    nested = None
    if out is None:  # self-instruct seed tasks: instances: [{input, output}]
        inst = prof.find(("instances", "examples"), pred=prof.list_of_dicts)
        if inst and all("output" in v[0] for v in inst.values):
            nested = inst.path
            fmap.update(input=f"{nested}.0.input", output=f"{nested}.0.output")
            why.append(f"input/output are nested in {nested!r} (first instance is used)")
    else:
        fmap["output"] = out.path
        if inp is not None and inp.path not in (ins.path, out.path):
            fmap["input"] = inp.path
            why.append(f"{inp.path!r} is the optional input ({_pct(inp.fill)} filled)")
    if "output" not in fmap:
        return None
    exact = ins.name == "instruction" and (nested or norm(fmap["output"]) == "output")
    conf = 0.95 if exact and not nested else 0.85 if exact else 0.7
    if ins.name in ("question", "prompt") and "input" not in fmap:
        conf = min(conf, 0.6)  # prompt/answer pairs are prompt_completion or QA first
    if prof.find(("context",), pred=lambda f: f.is_text and f.avg_len > 300):
        conf = min(conf, 0.5)  # long contexts: reading comprehension, not instructions
    if prof.find(CHOSEN + REJECTED):
        conf = min(conf, 0.5)
    if ins.fill < 0.9:
        conf -= 0.2
        why.append(f"but only {_pct(ins.fill)} of rows have it")
    system = prof.find(("system", "systemprompt"), pred=lambda f: f.is_text)
    if system:
        fmap["system"] = system.path
    why.append(f"{fmap['output']!r} holds the responses")
    return Detection(conf, "; ".join(why), fmap)


def _chat(prof: SampleProfile, want: str) -> Detection | None:
    found = _turn_keys(prof)
    if found is None:
        return None
    f, rk, ck = found
    roles = _roles(f, rk)
    style = "sharegpt" if rk == "from" else "openai_messages"
    conf = 0.95 if style == want else 0.55
    why = [f"{f.path!r} is a list of turns keyed {rk!r}/{ck!r} with roles {sorted(roles)}"]
    if not roles & BOT_ROLES or not roles & USER_ROLES:
        conf -= 0.3
        why.append("but no user/assistant pair of roles was seen")
    if prof.find(CHOSEN) and prof.find(REJECTED):
        conf = min(conf, 0.5)
        why.append("chosen/rejected fields point to preference data instead")
    if prof.find(("label", "kto_tag", "desirable")):
        conf = min(conf, 0.55)
        why.append("a per-row label points to kto instead")
    if prof.find(("images", "image", "videos", "audios")):
        conf = min(conf, 0.55)
        why.append("media references point to vision_language instead")
    fmap = {"messages": f.path}
    system = prof.find(("system",), pred=lambda s: s.is_text)
    if system:
        fmap["system"] = system.path
    return Detection(conf, "; ".join(why), fmap, {"role_key": rk, "content_key": ck})


@DETECTORS.register("sharegpt")
def detect_sharegpt(prof: SampleProfile) -> Detection | None:
    return _chat(prof, "sharegpt")


@DETECTORS.register("openai_messages")
def detect_openai_messages(prof: SampleProfile) -> Detection | None:
    return _chat(prof, "openai_messages")


@DETECTORS.register("prompt_completion")
def detect_prompt_completion(prof: SampleProfile) -> Detection | None:
    prompt = prof.find(("prompt", "query", "source", "question", "input"), pred=lambda f: f.is_text)
    if prompt is None:
        return None
    comp = prof.find(("completion", "response", "output", "answer", "target"),
                     pred=lambda f: f.is_text and f.path != prompt.path)
    if comp is None:
        return None
    exact = prompt.name == "prompt" and comp.name in ("completion", "response")
    conf = 0.9 if exact else 0.6
    if prof.find(("instruction",)) or prof.find(CHOSEN):
        conf = min(conf, 0.45)
    if prof.find(("context", "passages", "contexts"), pred=lambda f: not f.is_text or f.avg_len > 300):
        conf = min(conf, 0.45)
    why = f"{prompt.path!r} -> {comp.path!r} read as a prompt and its completion"
    return Detection(conf, why, {"prompt": prompt.path, "completion": comp.path})


@DETECTORS.register("text")
def detect_text(prof: SampleProfile) -> Detection | None:
    texts = [f for f in prof.text_fields(min_len=1) if f.common_prefix < 20]
    if not texts:
        return None
    best = texts[0]
    conf = 0.55 if best.avg_words >= 30 else 0.45 if best.avg_words >= 5 else 0.25
    if len(prof.fields) == 1:
        conf += 0.3  # a single text column: plain text, nothing else to learn from
    why = (f"{best.path!r} is the longest text field (avg {best.avg_words:.0f} words); plain text "
           "is the fallback when no task structure is found")
    return Detection(min(conf, 0.85), why, {"text": best.path})


# ---- labels --------------------------------------------------------------------------------
def _text_and_label(prof: SampleProfile, exclude: set[str] = frozenset()):
    texts = [f for f in prof.text_fields(min_len=12)
             if f.distinct_ratio >= 0.7 and f.path not in exclude and f.common_prefix < 20]
    if not texts:
        return None
    text = prof.find(TEXT, pred=lambda f: f in texts) or texts[0]
    candidates = [f for f in prof.fields.values()
                  if f.path != text.path and f.label_like and f.fill >= 0.9 and "." not in f.path]
    if not candidates:
        return None

    def rank(f: FieldStats) -> tuple:
        return (f.name in LABEL, f.distinct_ratio <= 0.5, -f.distinct_ratio)

    label = max(candidates, key=rank)
    return text, label, candidates


@DETECTORS.register("classification")
def detect_classification(prof: SampleProfile) -> Detection | None:
    found = _text_and_label(prof)
    if found is None:
        return None
    text, label, _ = found
    values = sorted({str(v) for v in label.values})
    named = label.name in LABEL
    identifier = label.is_text and all(len(v.split()) <= 3 and len(v) <= 60 for v in values)
    low_card = label.distinct <= max(2, len(label.values) // 2)
    conf = 0.35
    why = [f"{text.path!r} is free text (avg {text.avg_words:.0f} words)",
           f"{label.path!r} holds {label.distinct} distinct short values in {len(label.values)} rows"]
    if named:
        conf += 0.3
        why.append("its name says label")
    if low_card:
        conf += 0.25 if label.distinct > 5 else 0.35
        why.append("low cardinality")
    elif identifier and named:
        conf += 0.2
        why.append("values look like class identifiers")
    if len(prof.fields) == 2:
        conf += 0.15
        why.append("the row is just text and label")
    if label.distinct < 2:
        conf -= 0.4
        why.append("but only one value was seen")
    longs = [f for f in prof.text_fields(min_len=40) if f.path != text.path]
    if longs:
        conf -= 0.15 * len(longs)
        why.append(f"other long text fields ({', '.join(f.path for f in longs)}) suggest "
                   "another shape")
    if text.avg_words < 3:
        conf -= 0.2
    if any(_has_harm(f.name) for f in prof.fields.values()):
        conf = min(conf, 0.7)
        why.append("harm-related columns point to safety instead")
    # No label_set is proposed: a 20-row sample misses rare classes, and a set built from it
    # would reject their rows. Declare one with options={"label_set": [...]} to enforce it.
    options: dict[str, Any] = {}
    if label.distinct <= 12:
        why.append(f"values seen: {values}")
    return Detection(max(0.0, min(conf, 0.92)), "; ".join(why),
                     {"text": text.path, "label": label.path}, options)


@DETECTORS.register("safety")
def detect_safety(prof: SampleProfile) -> Detection | None:
    found = _text_and_label(prof)
    if found is None:
        return None
    text, label, candidates = found
    harm_cols = [f for f in prof.fields.values() if _has_harm(f.name) and f.path != text.path]
    values = {str(v).lower() for v in label.values}
    why = [f"{text.path!r} is the text"]
    options: dict[str, Any] = {}
    conf = 0.0
    # Vote-count columns whose argmax is the label: learn the label names from the data.
    votes = [f for f in candidates if f.int_like and f.path != label.path]
    names = _argmax_names(prof, label, votes) if label.int_like else None
    if names:
        safe = [v for v, n in names.items() if norm(n) in SAFE_NAMES]
        unsafe = [v for v, n in names.items() if v not in safe]
        if safe and unsafe:
            options = {"unsafe_values": unsafe, "safe_values": safe, "label_names": names}
            conf = 0.9
            why.append(f"{label.path!r} is the argmax of the vote columns "
                       f"{list(names.values())}, so its values mean {names}")
    if not options and _has_harm(label.name):
        conf = 0.85
        options = {"unsafe_values": ["1", "true", "yes"], "safe_values": ["0", "false", "no"]}
        why.append(f"the label {label.path!r} is named for harm")
    if not options and values & {"unsafe", "toxic", "harmful", "hate", "offensive"}:
        conf = 0.88
        why.append(f"{label.path!r} values include harm words {sorted(values)}")
    if not conf:
        if not harm_cols:
            return None
        conf = 0.6
        why.append(f"harm-related columns {[f.path for f in harm_cols]} exist but their meaning "
                   "is unclear; set unsafe_values/safe_values")
    return Detection(conf, "; ".join(why), {"text": text.path, "label": label.path}, options)


def _argmax_names(prof: SampleProfile, label: FieldStats, votes: list[FieldStats]):
    """Vote-count columns whose row-wise argmax is the label: {label value: column name}.

    Tries column subsets (in file order) and keeps the largest one that explains >= 80% of the
    untied sample rows; ids (all distinct) and constant columns are not votes.
    """
    from itertools import combinations

    votes = [v for v in votes if 1 < v.distinct < len(v.values)][:8]
    for k in range(len(votes), 1, -1):
        for combo in combinations(votes, k):
            hits = total = 0
            for row in prof.rows:
                try:
                    counts = [int(row[v.path]) for v in combo]
                    lab = int(row[label.path])
                except (KeyError, TypeError, ValueError):
                    continue
                best = max(range(k), key=counts.__getitem__)
                if counts.count(counts[best]) > 1:
                    continue  # a tie says nothing
                total += 1
                hits += best == lab
            if total >= 5 and hits / total >= 0.8:
                return {str(i): v.path for i, v in enumerate(combo)}
    return None


# ---- alignment -----------------------------------------------------------------------------
@DETECTORS.register("preference")
def detect_preference(prof: SampleProfile) -> Detection | None:
    chosen, rejected = prof.find(CHOSEN), prof.find(REJECTED)
    if chosen is None or rejected is None:
        return None
    fmap = {"chosen": chosen.path, "rejected": rejected.path}
    options: dict[str, Any] = {}
    why = [f"{chosen.path!r} and {rejected.path!r} are paired responses"]
    conf = 0.95
    prompt = prof.find(("prompt", "question", "instruction", "query", "input"),
                       pred=lambda f: f.is_text)
    turns = _turn_keys(prof)
    if prompt:
        fmap["prompt"] = prompt.path
        why.append(f"{prompt.path!r} is the prompt")
    elif turns:
        f, rk, ck = turns
        fmap["prompt"] = f.path
        options = {"role_key": rk, "content_key": ck}
        why.append(f"{f.path!r} holds the prompt turns")
    if chosen.share("dict") == 1.0:
        rk = "from" if all("from" in v for v in chosen.values) else "role"
        ck = "value" if rk == "from" else "content"
        options.update(role_key=rk, content_key=ck)
        why.append("responses are single message objects")
    elif "prompt" not in fmap:
        if chosen.is_text and all(s.lstrip("\n").startswith("Human:") for s in chosen.strings):
            why.append("no prompt field: both sides are Human/Assistant transcripts that share "
                       "the prompt, which is split off the last Assistant turn")
            conf = 0.9
        else:
            conf = 0.6
            why.append("no prompt field found")
    return Detection(conf, "; ".join(why), fmap, options)


@DETECTORS.register("kto")
def detect_kto(prof: SampleProfile) -> Detection | None:
    label = prof.find(("label", "kto_tag", "desirable", "is_desirable", "thumbs_up"),
                      pred=lambda f: f.share("bool") == 1.0
                      or {str(v).lower() for v in f.values} <= {"true", "false"})
    if label is None:
        return None
    turns = _turn_keys(prof)
    comp = prof.find(("completion", "response", "output"), pred=lambda f: f.is_text)
    prompt = prof.find(("prompt", "instruction", "query"), pred=lambda f: f.is_text)
    fmap = {"label": label.path}
    options: dict[str, Any] = {}
    if comp and prompt:
        fmap.update(prompt=prompt.path, completion=comp.path)
        why = f"{prompt.path!r} -> {comp.path!r} with a true/false {label.path!r}: unpaired feedback"
    elif turns:
        f, rk, ck = turns
        fmap["messages"] = f.path
        options = {"role_key": rk, "content_key": ck}
        why = (f"conversation {f.path!r} with a boolean {label.path!r}: unpaired feedback on the "
               "last assistant turn")
    else:
        return None
    return Detection(0.92, why, fmap, options)


# ---- extraction ----------------------------------------------------------------------------
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
        why = f"{tokens.path!r} and {tags.path!r} are parallel lists; {_pct(bio)} of tags are BIO"
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


@DETECTORS.register("span_extraction")
def detect_span_extraction(prof: SampleProfile) -> Detection | None:
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
        missing = sum(1 for s in spans if _get(s, start_key) is None)
        if missing or re.search(r"[a-z]Index$", start_key):
            options["missing_start"] = 0
            why.append(f"{missing} spans omit the start (protobuf JSON drops zeros: missing = 0)")
        ok = total = 0
        for row in prof.rows:
            txt = _get(row, text.path)
            for s in row.get(f.path) or []:
                total += 1
                st = _get(s, start_key) or 0
                en = _get(s, end_key)
                ok += isinstance(txt, str) and isinstance(en, int) and 0 <= st < en <= len(txt)
        conf = 0.6 + 0.3 * ok / total if total else 0.6
        why.append(f"{ok}/{total} sampled spans fall inside the text")
        if f.fill < 1:
            why.append(f"{_pct(1 - f.fill)} of rows carry no spans (kept, as rows with none)")
        return Detection(conf, "; ".join(why), {"text": text.path, "spans": f.path}, options)
    return None


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# ---- seq2seq and retrieval -----------------------------------------------------------------
SEQ_PAIRS = (("source", "target"), ("src", "tgt"), ("dialogue", "summary"),
             ("document", "summary"), ("article", "highlights"), ("article", "summary"),
             ("text", "summary"), ("input", "output"), ("original", "translation"))


@DETECTORS.register("seq2seq")
def detect_seq2seq(prof: SampleProfile) -> Detection | None:
    # Sentences, not ids or tags (one token each) and not boilerplate (a shared prefix).
    texts = [f for f in prof.text_fields(min_len=3)
             if f.common_prefix < 20 and f.fill >= 0.9 and f.avg_words > 1 and "." not in f.path]
    if len(texts) < 2:
        return None
    by_name = {f.name: f for f in texts}
    for a, b in SEQ_PAIRS:
        if a in by_name and b in by_name:
            src, tgt = by_name[a], by_name[b]
            conf = 0.9 if (a, b) != ("input", "output") else 0.55
            why = f"{src.path!r} -> {tgt.path!r} is a {a}/{b} pair"
            if prof.find(("instruction",)):
                conf = 0.4
            return Detection(conf, why, {"source": src.path, "target": tgt.path})
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
            return isinstance(v.get("title"), list) and len(v["title"]) >= 2
        return isinstance(v, list) and len(v) >= 2

    passages = None
    for f in prof.fields.values():
        if f.values and all(many(v) for v in f.values) and f.name in (
                "context", "contexts", "passages", "documents", "docs", "ctxs", "retrieved",
                "paragraphs", "evidence", "searchresults"):
            passages = f
            break
    if passages is None:
        return None
    answer = prof.find(("answer", "answers", "output", "response"), pred=lambda f: f.is_text)
    fmap = {"question": question.path, "passages": passages.path}
    avg = sum(len(v["title"] if isinstance(v, dict) else v) for v in passages.values) / len(
        passages.values)
    why = [f"{question.path!r} comes with {avg:.0f} passages on average in {passages.path!r}"]
    conf = 0.7
    if answer:
        fmap["answer"] = answer.path
        conf = 0.93
        why.append(f"{answer.path!r} is the answer")
    support = prof.find(("supporting_facts", "supporting", "support", "gold_passages"))
    if support:
        fmap["supporting"] = support.path
        why.append(f"{support.path!r} names the supporting sentences")
    return Detection(conf, "; ".join(why), fmap)


# ---- media ---------------------------------------------------------------------------------
def _image_template(prof: SampleProfile) -> tuple[str, str] | None:
    """A short id column whose values name image files beside the source: images/{col}.png."""
    base = prof.base_dir
    if base is None or not prof.rows:
        return None
    folders = [p for p in (base, base / "images", base / "imgs", base / "image", base / "img")
               if p.is_dir()]
    for f in prof.fields.values():
        if not f.scalar or "." in f.path or not all(
                re.fullmatch(r"[\w\-]{1,64}", str(v)) for v in f.values):
            continue  # ids only: no spaces, no separators, short
        for folder in folders:
            for ext in IMAGE_EXTS:
                hits = sum(_is_file(folder / f"{v}{ext}") for v in f.values)
                if f.values and hits == len(f.values):
                    rel = "" if folder == base else f"{folder.name}/"
                    return f"{rel}{{{f.path}}}{ext}", f.path
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system: not a file reference
        return False


@DETECTORS.register("vision_language")
def detect_vision_language(prof: SampleProfile) -> Detection | None:
    images = prof.find(("images", "image", "image_path", "imagepath", "img", "image_file",
                        "filepath", "path", "file"),
                       pred=lambda f: f.ends_with(IMAGE_EXTS) > 0.8 or any(
                           isinstance(v, list) and v and all(
                               isinstance(x, str) and x.lower().endswith(IMAGE_EXTS) for x in v)
                           for v in f.values))
    template = None if images else _image_template(prof)
    if images is None and template is None:
        return None
    fmap: dict[str, str] = {}
    options: dict[str, Any] = {}
    why = []
    if images:
        fmap["images"] = images.path
        refs = [x for v in images.values for x in (v if isinstance(v, list) else [v])]
        base = prof.base_dir or Path.cwd()
        exist = sum(_is_file(base / str(r)) or _is_file(Path(str(r))) for r in refs)
        why.append(f"{images.path!r} references images; {exist}/{len(refs)} sampled files exist")
        conf = 0.7 + 0.25 * exist / max(1, len(refs))
    else:
        options["image_template"], col = template
        why.append(f"every sampled {col!r} names an image file: {options['image_template']}")
        conf = 0.9
    turns = _turn_keys(prof)
    if turns:
        f, rk, ck = turns
        fmap["messages"] = f.path
        options.update(role_key=rk, content_key=ck)
        why.append(f"{f.path!r} holds the conversation")
    else:
        texts = [t for t in prof.text_fields(min_len=1) if t.path not in fmap.values()]
        question = prof.find(("question", "query", "prompt", "instruction"),
                             pred=lambda t: t in texts)
        if question is None:
            asks = [t for t in texts if sum(s.rstrip().endswith("?") for s in t.strings)
                    >= 0.5 * len(t.strings)]
            question = asks[0] if asks else None
        answer = prof.find(("answer", "caption", "response", "output", "text"),
                           pred=lambda t: t in texts and t is not question)
        if answer is None:
            rest = [t for t in texts if t is not question]
            answer = rest[0] if rest else None
        if answer is None:
            return None
        if question is None:
            conf -= 0.25
            why.append(f"no question found; {answer.path!r} is read as the caption")
            question_path = None
        else:
            question_path = question.path
            why.append(f"{question.path!r} asks, {answer.path!r} answers")
        if question_path:
            fmap["question"] = question_path
        else:
            options["default_question"] = "Describe the image."
        fmap["answer"] = answer.path
    if "question" not in fmap and "messages" not in fmap:
        return None
    return Detection(min(conf, 0.95), "; ".join(why), fmap, options)


DIGIT_WORDS = {str(i): w for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())}


@DETECTORS.register("audio_transcript")
def detect_audio_transcript(prof: SampleProfile) -> Detection | None:
    audio = prof.find(("audio", "path", "file", "audio_path", "filepath", "filename", "wav"),
                      pred=lambda f: f.ends_with(AUDIO_EXTS) > 0.8)
    media = prof.find(("media",), pred=lambda f: {str(v) for v in f.values} == {"audio"})
    if audio is None:
        if media is None:
            return None
        audio = prof.find(("path",))
        if audio is None:
            return None
    transcript = prof.find(("text", "transcript", "transcription", "sentence", "normalized_text",
                            "caption"), pred=lambda f: f.is_text)
    why = [f"{audio.path!r} points to audio files"]
    if transcript:
        return Detection(0.92, "; ".join(why + [f"{transcript.path!r} is the transcript"]),
                         {"audio": audio.path, "text": transcript.path})
    label = prof.find(("label", "class", "category"), pred=lambda f: f.scalar)
    if label is not None:
        values = {str(v) for v in label.values}
        options = {"text_map": DIGIT_WORDS} if values <= set(DIGIT_WORDS) else {}
        why.append(f"no transcript field: {label.path!r} (from the file or folder name) is used "
                   "as the transcript; check it")
        if options:
            why.append("its values are single digits, spoken as their English words")
        return Detection(0.75, "; ".join(why), {"audio": audio.path, "text": label.path}, options)
    names = [Path(str(v)).name for v in audio.values]
    heads = [n.split("_")[0] for n in names if "_" in n]
    options: dict[str, Any] = {}
    if heads and len(heads) == len(names):
        options["text_regex"] = r"^([^_]+)_"
        why.append("no transcript field: the text is taken from the file name before the first "
                   "'_' — check it")
        if all(h in DIGIT_WORDS for h in heads):
            options["text_map"] = DIGIT_WORDS
            why.append("the names start with a single digit, spoken as its English word")
        return Detection(0.75, "; ".join(why), {"audio": audio.path}, options)
    why.append("no transcript field and no pattern in the file names: map one with --field text=…")
    return Detection(0.4, "; ".join(why), {"audio": audio.path})
