"""Base for frozen contract objects: plain dataclasses with a JSON-friendly to_dict()."""

from __future__ import annotations

import dataclasses
from typing import Any


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class Contract:
    """Mixin: every contract is a frozen dataclass that turns into plain JSON data."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def contract(cls):  # type: ignore[no-untyped-def]
    """Decorator: a frozen, keyword-friendly dataclass that is also a Contract."""
    return dataclasses.dataclass(frozen=True)(cls)
