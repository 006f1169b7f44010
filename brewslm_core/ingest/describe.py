"""describe() and sample_rows(): one streaming pass for counts and field stats, one for samples."""

from __future__ import annotations

import re
from typing import Any

from ..contracts import FieldInfo, SentinelRow, SourceDescription
from .base import Connector, Row

# Spellings of "no value" that spreadsheets and exports use; they do not count as filled.
EMPTY_SPELLINGS = frozenset({"", "na", "n/a", "none", "null", "."})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_BOOL = frozenset({"true", "false"})


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in EMPTY_SPELLINGS
    if isinstance(value, (list, dict, tuple)):
        return len(value) == 0
    return False


def value_type(value: Any, text_values: bool) -> str:
    """Type name of one value; text sources (CSV, TSV) are typed by what the string spells."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, str) and text_values:
        text = value.strip()
        if _INT.fullmatch(text):
            return "int"
        if _FLOAT.fullmatch(text):
            return "float"
        if text.lower() in _BOOL:
            return "bool"
    return "str"


def merge_types(types: set[str]) -> str:
    types = types - {"null"}
    if not types:
        return "null"
    if len(types) == 1:
        return next(iter(types))
    if types == {"int", "float"}:
        return "float"
    return "mixed"


class FieldStats:
    def __init__(self) -> None:
        self.order: list[str] = []
        self.filled: dict[str, int] = {}
        self.types: dict[str, set[str]] = {}

    def add(self, row: dict[str, Any], text_values: bool) -> None:
        for key, value in row.items():
            if key not in self.filled:
                self.order.append(key)
                self.filled[key] = 0
                self.types[key] = set()
            if is_empty(value):
                continue
            self.filled[key] += 1
            self.types[key].add(value_type(value, text_values))

    def fields(self, total: int) -> tuple[FieldInfo, ...]:
        return tuple(
            FieldInfo(
                name=name,
                inferred_type=merge_types(self.types[name]),
                fill_rate=round(self.filled[name] / total, 4) if total else 0.0,
            )
            for name in self.order
        )


def _signature(connector: Connector) -> tuple[int, int] | None:
    """Size and mtime of the connector's file, so a cached count notices a changed file."""
    path = getattr(connector, "path", None)
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns) if stat else None


def count_rows(connector: Connector) -> int:
    cached = getattr(connector, "_row_count", None)
    if cached is not None and cached[0] == _signature(connector):
        return cached[1]
    total = sum(1 for _ in connector.load())
    _remember_count(connector, total)
    return total


def _remember_count(connector: Connector, total: int) -> None:
    try:
        connector._row_count = (_signature(connector), total)  # type: ignore[attr-defined]
    except AttributeError:
        pass


def stratified_indices(total: int, n: int) -> list[int]:
    """About n indices spread evenly from the first row to the last one."""
    if total <= 0 or n <= 0:
        return []
    if n >= total:
        return list(range(total))
    if n == 1:
        return [0]
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})


class SpreadSampler:
    """Keeps rows on an even grid over a stream of unknown length, in bounded memory.

    Every ``step``-th row is kept; when the buffer is full every other kept row is dropped and
    the step doubles, so the kept rows always span the stream so far (the last row is kept
    too). ``pick(n)`` then takes the kept rows nearest to n evenly spaced indices.
    """

    def __init__(self, n: int) -> None:
        self.capacity = max(8 * n, 256)
        self.step = 1
        self.kept: list[tuple[int, Row]] = []
        self.last: tuple[int, Row] | None = None
        self.total = 0

    def add(self, index: int, row: Row) -> None:
        self.total = index + 1
        self.last = (index, row)
        if index % self.step:
            return
        self.kept.append((index, row))
        if len(self.kept) > self.capacity:
            self.step *= 2
            self.kept = [item for item in self.kept if item[0] % self.step == 0]

    def pick(self, n: int) -> list[tuple[int, Row]]:
        pool = list(self.kept)
        if self.last is not None and (not pool or pool[-1][0] != self.last[0]):
            pool.append(self.last)
        if not pool:
            return []
        out: dict[int, tuple[int, Row]] = {}
        j = 0
        for target in stratified_indices(self.total, n):
            while j + 1 < len(pool) and abs(pool[j + 1][0] - target) <= abs(pool[j][0] - target):
                j += 1
            out.setdefault(pool[j][0], pool[j])
        return sorted(out.values(), key=lambda item: item[0])


def sample_rows(connector: Connector, n: int = 20) -> list[tuple[int, Row]]:
    """~n rows stratified through the whole source (head, middle and tail), with their 0-based
    index in load order. When the row count is known (cached by describe() or an earlier call)
    the indices are exactly evenly spaced; otherwise one pass keeps rows on a grid and picks
    the nearest ones (and caches the count)."""
    cached = getattr(connector, "_row_count", None)
    if cached is not None and cached[0] == _signature(connector):
        return _exact_sample(connector, cached[1], n)
    sampler = SpreadSampler(n)
    for index, row in enumerate(connector.load()):
        sampler.add(index, row)
    _remember_count(connector, sampler.total)
    return sampler.pick(n)


def _exact_sample(connector: Connector, total: int, n: int) -> list[tuple[int, Row]]:
    wanted = stratified_indices(total, n)
    if not wanted:
        return []
    out: list[tuple[int, Row]] = []
    pos = 0
    for index, row in enumerate(connector.load()):
        if index == wanted[pos]:
            out.append((index, row))
            pos += 1
            if pos == len(wanted):
                break
    return out


def sample_as_dict(row: Row) -> dict[str, Any]:
    if isinstance(row, SentinelRow):
        return {"_sentinel": row.to_dict()}
    return row


def describe_source(connector: Connector, sample_size: int = 20, *,
                    encoding: str | None = None, size: int | None = None,
                    text_values: bool = False) -> SourceDescription:
    stats = FieldStats()
    sampler = SpreadSampler(sample_size)
    total = 0
    sentinels = 0
    for row in connector.load():  # one pass: counts, field stats and the spread sample
        sampler.add(total, row)
        total += 1
        if isinstance(row, SentinelRow):
            sentinels += 1
        else:
            stats.add(row, text_values)
    _remember_count(connector, total)
    notes = tuple(getattr(connector, "notes", ()) or ())
    samples = sampler.pick(sample_size)
    return SourceDescription(
        locator=connector.locator,
        kind=connector.kind,
        rows=total,
        sentinel_rows=sentinels,
        fields=stats.fields(total - sentinels),
        encoding=encoding if encoding is not None else getattr(connector, "encoding", None),
        bytes=size,
        sample_rows=tuple(sample_as_dict(row) for _, row in samples),
        notes=notes,
    )
