"""CleanConfig: every cleaning step is configurable; a bad config lists all its problems at once."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..contracts.base import Contract, contract
from .steps import STEPS

PII_POLICIES: tuple[str, ...] = ("report", "mask", "drop", "block")
PII_TYPES: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "ip_address")
# Names and places need a model-based recognizer; used only when presidio is installed.
OPTIONAL_PII_TYPES: tuple[str, ...] = ("person", "location")
SHINGLE_KINDS: tuple[str, ...] = ("char", "word")


class CleanConfigError(ValueError):
    """The clean config has one or more invalid values (all listed in the message)."""


# The row steps in order (one module each in clean/steps/; a new step is a file and a name here).
DEFAULT_STEPS: tuple[str, ...] = ("normalize", "pii_policy", "exact_dedup", "near_dedup")


@contract
class CleanConfig(Contract):
    steps: tuple[str, ...] = DEFAULT_STEPS
    # text normalisation
    unicode_nfkc: bool = True
    whitespace: bool = True
    strip_html: bool = True
    # duplicates
    exact_dedup: bool = True
    near_dup: bool = True
    near_dup_threshold: float = 0.8  # estimated Jaccard of shingle sets
    near_dup_num_perm: int = 64
    near_dup_shingle: str = "char"  # "char" n-grams suit short texts (SMS, queries)
    near_dup_shingle_size: int = 5
    near_dup_min_shingles: int = 8  # shorter texts are only exact-deduplicated
    # quality and outliers
    quality: bool = True
    min_quality: float = 0.5  # below this a document is an outlier
    max_outlier_fraction: float = 0.05  # cap: above it nothing is removed and an event is raised
    remove_outliers: bool = True
    # PII
    pii: bool = True
    pii_policy: str = "report"  # report | mask | drop | block
    pii_types: tuple[str, ...] = PII_TYPES
    mask_template: str = "[{type}]"
    # chunks for retrieval
    chunk: bool = True
    chunk_tokens: int = 128
    chunk_overlap: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "pii_types", tuple(self.pii_types))
        object.__setattr__(self, "steps", tuple(self.steps))
        problems = self.problems()
        if problems:
            raise CleanConfigError("invalid clean config:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        out = []
        unknown_steps = [s for s in self.steps if s not in STEPS]
        if unknown_steps:
            out.append(f"steps {unknown_steps} unknown; registered steps: {', '.join(STEPS.names())}")
        if self.pii_policy not in PII_POLICIES:
            out.append(f"pii_policy {self.pii_policy!r} is not one of {', '.join(PII_POLICIES)}")
        unknown = [t for t in self.pii_types if t not in PII_TYPES + OPTIONAL_PII_TYPES]
        if unknown:
            known = ", ".join(PII_TYPES + OPTIONAL_PII_TYPES)
            out.append(f"pii_types {unknown} unknown; choose from {known}")
        wants_model = [t for t in self.pii_types if t in OPTIONAL_PII_TYPES]
        if self.pii and wants_model:
            import importlib.util

            if importlib.util.find_spec("presidio_analyzer") is None:
                out.append(f"pii_types {wants_model} need presidio: `pip install presidio-analyzer` "
                           "(and a spaCy English model), or leave them out")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            out.append(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.near_dup_num_perm < 16:
            out.append(f"near_dup_num_perm must be >= 16, got {self.near_dup_num_perm}")
        if self.near_dup_shingle not in SHINGLE_KINDS:
            out.append(f"near_dup_shingle must be one of {', '.join(SHINGLE_KINDS)}")
        if self.near_dup_shingle_size < 1:
            out.append("near_dup_shingle_size must be >= 1")
        if not 0.0 <= self.min_quality <= 1.0:
            out.append(f"min_quality must be in [0, 1], got {self.min_quality}")
        if not 0.0 <= self.max_outlier_fraction <= 1.0:
            out.append(f"max_outlier_fraction must be in [0, 1], got {self.max_outlier_fraction}")
        if "{type}" not in self.mask_template:
            out.append("mask_template must contain '{type}', e.g. '[{type}]'")
        if self.chunk_tokens < 8:
            out.append(f"chunk_tokens must be >= 8, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            out.append(f"chunk_overlap must be in [0, chunk_tokens), got {self.chunk_overlap}")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CleanConfig:
        """Build from plain data (e.g. task kwargs); unknown keys are an error naming them."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, names, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise CleanConfigError(f"unknown clean config keys: {', '.join(hints)}")
        return cls(**data)
