"""Detectors for labelled text: classification and safety."""

from __future__ import annotations

from typing import Any

from ..profile import FieldStats, SampleProfile, norm
from .base import (
    DETECTORS,
    LABEL,
    SAFE_NAMES,
    TEXT,
    Detection,
    has_harm,
)


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
    if any(has_harm(f.name) for f in prof.fields.values()):
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
    if not options and has_harm(label.name):
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
