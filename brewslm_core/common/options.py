"""The one ``key=value`` parser (CLI ``--set``, ``--field``, ``--option`` and the like)."""

from __future__ import annotations

import json
from typing import Any


def parse_pairs(pairs: list[str] | tuple[str, ...] | None, what: str = "--set", *,
                json_values: bool = True) -> dict[str, Any]:
    """``["a=b", "n=3"]`` -> ``{"a": "b", "n": 3}``; values are read as JSON when they parse as JSON
    (``json_values``), else kept as the bare string (``method=full``). Raises ValueError naming
    ``what`` for an item without ``=`` or with an empty key."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} takes key=value, got {pair!r}")
        if json_values:
            try:
                out[key.strip()] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        out[key.strip()] = value
    return out
