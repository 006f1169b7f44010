"""Detectors for labelled text: classification and safety."""

from __future__ import annotations

from typing import Any

from ..profile import FieldStats, SampleProfile, norm
from .base import (
    DETECTORS,
    HARM_CATEGORY,
    HARM_VALUE_WORDS,
    LABEL,
    SAFE_NAMES,
    SAFETY_FLAGS,
    TEXT,
    Detection,
    bool_field,
    has_harm,
    safety_signal,
)


def _text_and_label(prof: SampleProfile, exclude: set[str] = frozenset(),
                    text: FieldStats | None = None):
    if text is None:
        texts = [f for f in prof.text_fields(min_len=12)
                 if f.distinct_ratio >= 0.7 and f.path not in exclude and f.common_prefix < 20]
        if not texts:
            return None
        text = prof.find(TEXT, pred=lambda f: f in texts) or texts[0]
    candidates = [f for f in prof.fields.values()
                  if f.path != text.path and f.label_like and f.fill >= 0.9 and "." not in f.path
                  and f.path not in exclude]
    if not candidates:
        return None

    def rank(f: FieldStats) -> tuple:
        return (f.name in LABEL, f.distinct_ratio <= 0.5, -f.distinct_ratio)

    label = max(candidates, key=rank)
    return text, label, candidates


# Sentence-pair columns (GLUE, NLI, paraphrase sets), by normalised name.
TEXT_PAIRS = (("sentence1", "sentence2"), ("texta", "textb"), ("premise", "hypothesis"),
              ("question1", "question2"), ("1string", "2string"), ("sentencea", "sentenceb"),
              ("text1", "text2"), ("sentence", "sentence2"), ("string1", "string2"))


def _pair(prof: SampleProfile) -> tuple[FieldStats, FieldStats] | None:
    by_name = {f.name: f for f in prof.fields.values() if f.is_text and "." not in f.path}
    for a, b in TEXT_PAIRS:
        if a in by_name and b in by_name:
            return by_name[a], by_name[b]
    return None


@DETECTORS.register("classification")
def detect_classification(prof: SampleProfile) -> Detection | None:
    pair = _pair(prof)
    found = _text_and_label(prof, exclude={pair[1].path} if pair else set(),
                            text=pair[0] if pair else None)
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
    fmap = {"text": text.path, "label": label.path}
    if pair is not None:
        fmap["text_pair"] = pair[1].path
        conf += 0.15
        why.append(f"{pair[0].path!r} and {pair[1].path!r} are a sentence pair; both are kept")
    if label.distinct < 2:
        conf -= 0.4
        why.append("but only one value was seen")
    # Columns derived from a mapped text (SNLI's sentence1_parse) are not other content.
    longs = [f for f in prof.text_fields(min_len=40) if f.path not in fmap.values()
             and not any(f.name.startswith(norm(v)) for v in fmap.values())]
    if longs:
        conf -= 0.15 * len(longs)
        why.append(f"other long text fields ({', '.join(f.path for f in longs)}) suggest "
                   "another shape")
    if text.avg_words < 3:
        conf -= 0.2
    if any(has_harm(f.name) for f in prof.fields.values()):
        conf = min(conf, 0.7)
        why.append("harm-related columns point to safety instead")
    signal = safety_signal(prof)
    if signal:
        conf = min(conf, 0.6)
        why.append(f"{signal}: it also fits a text/label sheet, but reads as safety first")
    if bool_field(prof, label):
        if prof.find(("completion", "response", "output"), pred=lambda f: f.is_text):
            conf = min(conf, 0.6)
            why.append(f"a true/false {label.path!r} beside a completion reads as kto first: "
                       "both fit, kto ranks higher")
    # No label_set is proposed: a 20-row sample misses rare classes, and a set built from it
    # would reject their rows. Declare one with options={"label_set": [...]} to enforce it.
    options: dict[str, Any] = {}
    if label.distinct <= 12:
        why.append(f"values seen: {values}")
    return Detection(max(0.0, min(conf, 0.92)), "; ".join(why), fmap, options)


def _flag_sheet(prof: SampleProfile, text: FieldStats) -> Detection | None:
    """A prompt sheet with a safe/unsafe flag column (is_safe, harmful…) and maybe a category."""
    flag = next((f for f in prof.fields.values() if f.name in SAFETY_FLAGS and "." not in f.path
                 and (bool_field(prof, f) or f.int_like)), None)
    if flag is None:
        return None
    yes, no = ["true", "1", "yes"], ["false", "0", "no"]
    safe_means_true = SAFETY_FLAGS[flag.name] == "safe"
    options: dict[str, Any] = {"safe_values": yes if safe_means_true else no,
                               "unsafe_values": no if safe_means_true else yes}
    fmap = {"text": text.path, "label": flag.path}
    why = [f"{text.path!r} is the text", f"{flag.path!r} flags each row "
           f"{'safe' if safe_means_true else 'unsafe'} when true (the rows also fit a text/label "
           "sheet, which ranks below)"]
    category = prof.find(HARM_CATEGORY, pred=lambda f: f.path != flag.path and (f.scalar or all(
        isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()) for v in f.values)))
    if category:
        fmap["categories"] = category.path
        why.append(f"{category.path!r} names the harm category")
    elif not safe_means_true:
        _category_columns(prof, flag, options, why)
    return Detection(0.9, "; ".join(why), fmap, options)


def _category_columns(prof: SampleProfile, label: FieldStats, options: dict[str, Any],
                      why: list[str]) -> None:
    """Jigsaw: toxic, severe_toxic, obscene, threat, insult, identity_hate flag columns."""
    flags = [f for f in prof.fields.values() if has_harm(f.name) and f.path != label.path
             and "." not in f.path and (f.int_like or bool_field(prof, f))]
    if flags:
        options["category_columns"] = [label.path, *(f.path for f in flags)]
        why.append(f"the flag columns {options['category_columns']} that are set name each "
                   "row's categories")


@DETECTORS.register("safety")
def detect_safety(prof: SampleProfile) -> Detection | None:
    found = _text_and_label(prof)
    if found is None:
        return None
    text, label, candidates = found
    sheet = _flag_sheet(prof, text)
    if sheet is not None:
        return sheet
    harm_cols = [f for f in prof.fields.values() if has_harm(f.name) and f.path != text.path]
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
    flaglike = label.int_like or bool_field(prof, label) or values <= {"yes", "no", "true",
                                                                        "false", "0", "1"}
    if not options and not flaglike and (has_harm(label.name) or label.name in HARM_CATEGORY) \
            and (any(norm(v) in SAFE_NAMES for v in values)
                 or any(has_harm(norm(v)) or any(w in v for w in HARM_VALUE_WORDS) for v in values)):
        safe = sorted({str(v) for v in label.values if norm(str(v)) in SAFE_NAMES})
        options = {"safe_values": safe, "unsafe_otherwise": True}
        conf = 0.85
        why.append(f"{label.path!r} names each row's harm category ({sorted(values)}): "
                   f"{safe or 'no value seen'} mean safe, any other value is unsafe with that "
                   "category (the rows also fit a text/label sheet, which ranks below)")
    if not options and has_harm(label.name):
        conf = 0.85
        options = {"unsafe_values": ["1", "true", "yes"], "safe_values": ["0", "false", "no"]}
        why.append(f"the label {label.path!r} is named for harm")
        _category_columns(prof, label, options, why)
    if not options and values & {"unsafe", "toxic", "harmful", "hate", "offensive"}:
        conf = 0.88
        why.append(f"{label.path!r} values include harm words {sorted(values)} (the rows also "
                   "fit a text/label sheet, which ranks below)")
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
