"""Option parsers several command groups share."""

from __future__ import annotations

from typing import Any

import typer

from ..common import parse_pairs


def parse_sets(values: list[str], what: str = "--set", *, json_values: bool = True) -> dict[str, Any]:
    """Overrides from repeated ``--set key=value`` (values read as JSON when they parse, else kept as
    the bare string such as ``method=full``): ``common.parse_pairs`` with a typer error."""
    try:
        return parse_pairs(values, what, json_values=json_values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
