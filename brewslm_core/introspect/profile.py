"""A small statistical profile of ~20 sample rows: what each field holds, not just its name."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
AUDIO_EXTS = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus")


def norm(name: str) -> str:
    """Key name for matching: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def script_of(text: str) -> str:
    """The dominant Unicode script of a text's letters (LATIN, DEVANAGARI, CJK, ...)."""
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            try:
                counts[unicodedata.name(ch).split(" ")[0]] += 1
            except ValueError:
                continue
    return counts.most_common(1)[0][0] if counts else ""


@dataclass
class FieldStats:
    path: str
    values: list[Any]  # present, non-null values
    rows: int  # rows in the sample

    @property
    def name(self) -> str:
        return norm(self.path.rsplit(".", 1)[-1])

    @property
    def fill(self) -> float:
        return len(self.values) / self.rows if self.rows else 0.0

    @cached_property
    def kinds(self) -> Counter[str]:
        return Counter(type(v).__name__ for v in self.values)

    def share(self, kind: str) -> float:
        return self.kinds[kind] / len(self.values) if self.values else 0.0

    @cached_property
    def strings(self) -> list[str]:
        return [v for v in self.values if isinstance(v, str)]

    @property
    def is_text(self) -> bool:
        return bool(self.values) and self.share("str") >= 0.9

    @cached_property
    def avg_len(self) -> float:
        s = self.strings
        return sum(len(x) for x in s) / len(s) if s else 0.0

    @cached_property
    def avg_words(self) -> float:
        s = self.strings
        return sum(len(x.split()) for x in s) / len(s) if s else 0.0

    @cached_property
    def distinct_ratio(self) -> float:
        if not self.values:
            return 0.0
        return len({repr(v) for v in self.values}) / len(self.values)

    @cached_property
    def distinct(self) -> int:
        return len({repr(v) for v in self.values})

    @cached_property
    def scalar(self) -> bool:
        return bool(self.values) and all(isinstance(v, (str, int, float, bool)) for v in self.values)

    @cached_property
    def common_prefix(self) -> int:
        """Length of the prefix every string shares (boilerplate such as attributions)."""
        s = self.strings
        if len(s) < 2:
            return 0
        a, b = min(s), max(s)
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    @cached_property
    def script(self) -> str:
        return script_of(" ".join(self.strings[:20]))

    @cached_property
    def int_like(self) -> bool:
        """All values are integers (or integer strings, as CSV gives them)."""
        if not self.values:
            return False
        return all(
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip() or "x"))
            for v in self.values
        )

    @cached_property
    def label_like(self) -> bool:
        """Short categorical values: ints, bools, or a few words at most."""
        if not self.scalar:
            return False
        if self.is_text:
            return self.avg_words <= 3 and self.avg_len <= 40
        return self.int_like or self.share("bool") == 1.0

    def ends_with(self, exts: tuple[str, ...]) -> float:
        s = self.strings
        return sum(x.lower().endswith(exts) for x in s) / len(s) if s else 0.0


@dataclass
class SampleProfile:
    rows: list[dict[str, Any]]
    sentinels: int = 0
    base_dir: Path | None = None
    fields: dict[str, FieldStats] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: list[Any], sentinels: int = 0, base_dir: Path | None = None) -> SampleProfile:
        dict_rows = [r for r in rows if isinstance(r, dict)]
        prof = cls(rows=dict_rows, sentinels=sentinels, base_dir=base_dir)
        paths: dict[str, list[Any]] = {}
        for row in dict_rows:
            for key, value in row.items():
                paths.setdefault(key, [])
                if isinstance(value, dict):  # one level of nesting: userInput.text
                    for sub, v in value.items():
                        if not isinstance(v, (dict, list)) and v is not None:
                            paths.setdefault(f"{key}.{sub}", []).append(v)
                if value is not None and value != "":
                    paths[key].append(value)
        prof.fields = {p: FieldStats(p, vals, len(dict_rows)) for p, vals in paths.items()}
        return prof

    @property
    def total(self) -> int:
        return len(self.rows) + self.sentinels

    def find(self, names: tuple[str, ...] | set[str], *, pred=None) -> FieldStats | None:
        """The first field (in ``names`` order) whose normalised name matches and passes pred."""
        by_name: dict[str, list[FieldStats]] = {}
        for f in self.fields.values():
            by_name.setdefault(f.name if "." not in f.path else norm(f.path), []).append(f)
            by_name.setdefault(f.name, []).append(f)
        for n in names:
            for f in by_name.get(norm(n), []):
                if f.values and (pred is None or pred(f)):
                    return f
        return None

    def text_fields(self, min_len: float = 1.0) -> list[FieldStats]:
        """String fields, longest on average first."""
        out = [f for f in self.fields.values() if f.is_text and f.avg_len >= min_len]
        return sorted(out, key=lambda f: -f.avg_len)

    def list_of_dicts(self, f: FieldStats) -> bool:
        return bool(f.values) and all(
            isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in f.values
        )
