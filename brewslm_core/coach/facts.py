"""What the Coach reads: small summaries the stages already wrote, never the raw rows.

Every reader here only reads. Suggestions are built from import records (per-reason counts),
the clean report, the manifest (counts, label counts), RunEvents, run plans and traces, the
annotation queue and eval reports. One ``Facts`` object caches them for one ``suggest`` call.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..project import Project

EVALUATE_PACKAGE = "brewslm_core.evaluate"
EVENT_WINDOW = 200  # newest events per stage a generator looks at
EVENT_STAGES = ("ingestion", "training")  # the RunEvent stages the generators read


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of a small file (a half-written last line is skipped)."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


class Facts:
    """Lazy, cached reads of one project for one round of suggestions."""

    def __init__(self, project: Project) -> None:
        self.project = project

    @cached_property
    def imports(self) -> list[dict[str, Any]]:
        from ..mapping import read_imports

        return read_imports(self.project)

    @cached_property
    def committed_rows(self) -> int:
        return sum(int(i.get("rows", i.get("accepted", 0))) for i in self.imports)

    @cached_property
    def clean_report(self) -> dict[str, Any] | None:
        return read_json(self.project.cleaned_dir / "report.json")

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        return read_json(self.project.manifest_path)

    def events(self, stage: str) -> list[dict[str, Any]]:
        """The newest EVENT_WINDOW events of a stage, newest first, payloads as dicts.

        The stages the generators read are fetched together in one query (one DuckDB open).
        """
        cache = self.__dict__.setdefault("_events", {})
        if stage not in cache:
            wanted = sorted({stage, *EVENT_STAGES})
            for name in wanted:
                cache[name] = []
            if self.project.events.log_path.exists():
                marks = ", ".join("?" for _ in wanted)
                frame = self.project.events.query(
                    "SELECT id, run_id, parent_run_id, stage, severity, reason_code, actor, summary, "
                    "payload FROM (SELECT *, row_number() OVER (PARTITION BY stage ORDER BY id DESC) "
                    f"AS newest FROM run_events WHERE stage IN ({marks})) WHERE newest <= ? "
                    "ORDER BY id DESC", [*wanted, EVENT_WINDOW])
                for rec in frame.to_dict(orient="records"):
                    row = {k: (None if isinstance(v, float) and v != v else v)  # NULL comes as NaN
                           for k, v in rec.items()}
                    row["payload"] = json.loads(row["payload"]) if row["payload"] else {}
                    cache[row["stage"]].append(row)
        return cache[stage]

    @cached_property
    def runs(self) -> list[str]:
        """Run ids with a train plan or a trace, newest first (by directory mtime)."""
        root = self.project.runs_dir
        if not root.is_dir():
            return []
        found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return [p.name for p in found]

    def trace(self, run_id: str) -> list[dict[str, Any]]:
        return read_jsonl(self.project.run_dir(run_id) / "trace.jsonl")

    def checkpoints(self, run_id: str) -> list[int]:
        root = self.project.run_dir(run_id) / "checkpoints"
        if not root.is_dir():
            return []
        steps = []
        for p in root.iterdir():
            if p.name.startswith("step-") and p.name[5:].isdigit():
                steps.append(int(p.name[5:]))
        return sorted(steps)

    @cached_property
    def annotation_jobs(self) -> list[dict[str, Any]]:
        from ..annotate import list_jobs

        return [job.to_dict() for job in list_jobs(self.project)]

    def eval_report(self, run_id: str) -> tuple[dict[str, Any] | None, str]:
        """(the latest EvalReport of a run as a dict, or None, why there is none)."""
        if importlib.util.find_spec(EVALUATE_PACKAGE) is None:
            return None, "the evaluate stage is not installed in this version"
        evaluate = importlib.import_module(EVALUATE_PACKAGE)
        latest = getattr(evaluate, "latest_report", None)
        if latest is None:
            return None, f"{EVALUATE_PACKAGE} has no latest_report(project, run_id)"
        report = latest(self.project, run_id)
        if report is None:
            return None, f"run {run_id} has no eval report yet"
        data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        return data, ""
