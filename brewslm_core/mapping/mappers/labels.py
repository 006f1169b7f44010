"""Mappers for labelled text: classification and safety."""

from __future__ import annotations

from ..fields import RowReject, label_text, lookup, text_field
from .base import MAPPERS


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
    record = {"text": text, "label": label}
    if "text_pair" in field_map:  # sentence-pair classification (MRPC, NLI): keep both texts
        record["text_pair"] = text_field(row, field_map, "text_pair")
    return record


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
    elif options.get("unsafe_otherwise"):  # a harm-category column: any other value is a harm
        label = "unsafe"
    elif not unsafe_values and raw.lower() in _UNSAFE_WORDS:
        label = "unsafe"
    elif not safe_values and raw.lower() in _SAFE_WORDS:
        label = "safe"
    else:
        raise RowReject("label_not_in_set", f"label {raw!r} is neither a safe nor an unsafe value")
    categories: list[str] = []
    if options.get("category_columns"):  # one 0/1 flag column per category (Jigsaw)
        if label == "unsafe":
            categories = [str(c) for c in options["category_columns"]
                          if str(lookup(row, str(c), default="")).strip().lower() in _UNSAFE_WORDS]
    elif "categories" in field_map:
        value = lookup(row, field_map["categories"], default=None)
        if isinstance(value, dict):  # BeaverTails: {"category name": true/false, …}
            value = [k for k, v in value.items() if v is True or str(v).lower() in ("1", "true")]
        if isinstance(value, str):
            value = [c.strip() for c in value.split(",")]
        if not isinstance(value, list):
            value = [] if value is None else [value]
        categories = [str(c) for c in value if str(c).strip()
                      and str(c).strip().lower() not in _SAFE_WORDS]
    elif label == "unsafe":
        name = (options.get("label_names") or {}).get(raw, raw)
        if str(name).lower() not in {"true", "false", "0", "1", "yes", "no", "unsafe"}:
            categories = [str(name)]  # a flag value names no category
    return {"text": text, "label": label, "categories": categories}
