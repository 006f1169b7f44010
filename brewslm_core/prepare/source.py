"""Where Prepare's rows come from: Clean's output when it is current, else the committed rows.

"Current" is Clean's own test (``clean.current_report``): the report was made from exactly the
committed bytes of synthetic.jsonl as they are now. A current report that says ``blocked`` stops
Prepare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..annotate import promoted_rows
from ..mapping import read_committed, read_imports
from ..project import Project

ROW_KEYS = ("import_id", "row_index", "shape", "task_profile", "config_id", "text_hash", "record")


class CleanBlockedError(RuntimeError):
    """Clean's PII policy blocked the dataset; Prepare must not build on it."""


def _iter_jsonl(path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_rows(project: Project) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, source description). Rows carry only the committed-row keys."""
    from ..clean import current_report, input_fingerprint, load_report

    imports = read_imports(project)
    committed_sha, committed_rows = input_fingerprint(project)
    source: dict[str, Any] = {
        "rows_from": "committed",
        "committed_sha256": committed_sha,
        "committed_rows": committed_rows,
        "import_ids": [i["import_id"] for i in imports],
        "config_ids": sorted({str(i.get("config_id") or "") for i in imports} - {""}),
        "gold_import_ids": [i["import_id"] for i in imports if i.get("gold")],
        "note": "",
    }
    rows_iter: Iterator[dict[str, Any]] = read_committed(project)
    report = current_report(project)
    if report is not None and report.blocked:
        raise CleanBlockedError(
            f"the last clean blocked this dataset (PII found: {report.pii_by_type}, policy "
            f"{report.pii_policy!r}); prepare refuses to build on it. Re-run clean with "
            "pii_policy='mask' or 'drop', or remove the PII at the source and re-import"
        )
    rows_path = project.cleaned_dir / "rows.jsonl"
    if report is not None and rows_path.is_file():
        source["rows_from"] = "cleaned"
        source["clean_removed_rows"] = report.removed_rows
        rows_iter = _iter_jsonl(rows_path)
    elif report is not None:
        source["note"] = "the clean report has no rows.jsonl; used the committed rows"
    elif load_report(project) is not None:
        source["note"] = (
            "the clean output is stale (rows were committed after clean ran); used the committed "
            "rows. Re-run clean to prepare from cleaned rows"
        )
    rows = [{key: row.get(key) for key in ROW_KEYS} for row in rows_iter]
    # Labelled rows promoted from annotation jobs are gold: they join as their job's "import"
    # (never cleaned or deduplicated against the rows they were labelled from).
    promoted = promoted_rows(project)
    if promoted:
        jobs = sorted({r["import_id"] for r in promoted})
        source["gold_import_ids"] = source["gold_import_ids"] + jobs
        source["annotation_job_ids"] = jobs
        rows.extend(promoted)
    return rows, source
