"""Clean stage: normalise, deduplicate, score, scan for PII and chunk the committed rows.

Use ``clean(project, CleanConfig(...))`` inline or ``start_clean(project, config)`` for a
background task (poll ``brewslm_core.tasks.status``). Outputs live in ``project.cleaned_dir``:
rows.jsonl, metadata.jsonl, chunks.jsonl, report.json. Prepare calls ``require_current`` to get
a report made from the rows committed now, and is refused when the clean blocked the dataset.
"""

from .config import PII_POLICIES, PII_TYPES, CleanConfig, CleanConfigError
from .pipeline import (
    CleanBlocked,
    CleanReport,
    clean,
    current_report,
    input_fingerprint,
    load_report,
    require_current,
    start_clean,
)

__all__ = [
    "PII_POLICIES",
    "PII_TYPES",
    "CleanBlocked",
    "CleanConfig",
    "CleanConfigError",
    "CleanReport",
    "clean",
    "current_report",
    "input_fingerprint",
    "load_report",
    "require_current",
    "start_clean",
]
