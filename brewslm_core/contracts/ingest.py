from __future__ import annotations

from typing import Any

from .base import Contract, contract


@contract
class SentinelRow(Contract):
    """A line or record that could not be parsed or decoded. Kept, never dropped."""

    line_number: int  # 1-based line (or record index for non-line formats)
    raw: str  # the raw bytes decoded with errors="backslashreplace"
    error: str  # the parser's message
    source: str  # the locator it came from


@contract
class FieldInfo(Contract):
    name: str
    inferred_type: str  # str, int, float, bool, list, dict, null, mixed
    fill_rate: float  # share of rows where the field is present and non-empty


@contract
class SourceDescription(Contract):
    """What describe() says about a source without loading it all into memory."""

    locator: str
    kind: str  # jsonl, json, csv, tsv, parquet, conll, dir, hf, kaggle
    rows: int  # records including sentinel rows
    sentinel_rows: int
    fields: tuple[FieldInfo, ...]
    encoding: str | None
    bytes: int | None
    sample_rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()  # e.g. "delimiter ';'", "git-lfs pointer", "html page"
