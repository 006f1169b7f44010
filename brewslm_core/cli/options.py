"""Option parsers several command groups share."""

from __future__ import annotations

import json

import typer


def parse_sets(values: list[str]) -> dict:
    """TrainConfig overrides from repeated ``--set key=value`` (values read as JSON when they parse)."""
    out: dict = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set takes key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw  # a bare string such as method=full
    return out
