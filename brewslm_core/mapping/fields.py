"""Reading source fields by path, with row-level rejections that carry a stable reason code."""

from __future__ import annotations

from typing import Any

from ..contracts.reasons import ROW_REJECT_CODES

_MISSING = object()


class RowReject(Exception):
    """Raised by a mapper: this row cannot become a record. ``reason`` is a ROW_REJECT_CODES key."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in ROW_REJECT_CODES:
            raise ValueError(f"unknown row reject code {reason!r}; add it to ROW_REJECT_CODES")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def lookup(row: Any, path: str, default: Any = _MISSING) -> Any:
    """Value at ``path`` ("a.b.0.c": dots nest, integers index lists); a flat key wins first.

    Raises RowReject(missing_field) when absent and no default is given.
    """
    if row.__class__ is dict and path in row:
        return row[path]
    node = row
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit() and -len(node) <= int(
            part
        ) < len(node):
            node = node[int(part)]
        else:
            if default is not _MISSING:
                return default
            raise RowReject("missing_field", f"the row has no field {path!r}")
    return node


def as_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    """A scalar as text; lists/dicts are a type mismatch, blank text is empty_text."""
    if value.__class__ is str and (allow_empty or value[:1].strip() or value.strip()):
        return value  # the common case, kept cheap: it runs for every field of every row
    if value is None:
        value = ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise RowReject("type_mismatch", f"{name} should be text but is a {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RowReject("empty_text", f"{name} is empty")
    return value


def text_field(
    row: Any, field_map: dict[str, str], name: str, *, required: bool = True,
    allow_empty: bool = False,
) -> str:
    """The canonical field ``name`` read through the field map (optional ones default to "")."""
    path = field_map.get(name)
    if path is None:
        if required:
            raise RowReject("missing_field", f"no source field is mapped to {name!r}")
        return ""
    value = lookup(row, path, default=None if not required else _MISSING)
    if value is None and not required:
        return ""
    return as_text(value, f"{name} ({path})", allow_empty=allow_empty or not required)


def label_text(value: Any, name: str = "label") -> str:
    """Labels are always strings: 0 -> "0", 1.0 -> "1", True -> "true"."""
    if isinstance(value, (list, dict)):
        raise RowReject("type_mismatch", f"{name} should be one value but is a {type(value).__name__}")
    return as_text(value, name).strip()
