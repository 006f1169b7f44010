"""Annotation: label committed or eval rows in a job queue, then promote them to the gold set.

    job = create_job(project, "refund top-up", target_rows=40)
    for item in items(project, job.job_id, pending_only=True): submit_label(..., actor="ana")
    promote(project, job.job_id)     # Prepare keeps promoted rows apart in gold.jsonl
"""

from ..contracts.annotate import LABEL_TYPES, AnnotationItem, AnnotationJob
from .jobs import (
    SOURCES,
    AnnotationError,
    create_job,
    items,
    job,
    list_jobs,
    promote,
    promoted_rows,
    submit_label,
)

__all__ = [
    "LABEL_TYPES",
    "SOURCES",
    "AnnotationError",
    "AnnotationItem",
    "AnnotationJob",
    "create_job",
    "items",
    "job",
    "list_jobs",
    "promote",
    "promoted_rows",
    "submit_label",
]
