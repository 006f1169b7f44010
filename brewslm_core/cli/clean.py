"""`brewslm clean PROJECT`: run the clean as a background task, show progress, print the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from ..clean.config import PII_POLICIES, CleanConfig, CleanConfigError
from ..project import Project, ProjectError
from .progress import progress_bar


def _summary(report: dict) -> str:
    lines = [
        f"rows: {report['input_rows']} in, {report['kept_rows']} kept, {report['removed_rows']} removed",
        f"removed by reason: {report['removed_by_reason'] or '-'}",
        f"changed by step:   {report['changed_by_step'] or '-'}",
        f"PII ({report['pii_policy']}): {report['pii_by_type'] or 'none'} in {report['pii_docs']} rows",
        f"outliers: {report['outliers']['flagged']} flagged, {report['outliers']['removed']} removed"
        + (" (cap exceeded: none removed)" if report["outliers"]["threshold_exceeded"] else ""),
        f"chunks: {report['chunks']}",
        f"outputs: {', '.join(report['outputs'].values())}",
    ]
    if report["blocked"]:
        lines.insert(0, "BLOCKED: PII found under policy 'block'; Prepare will refuse this dataset")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("clean")
    def clean_cmd(
        project: Path = typer.Argument(..., help="Project directory"),
        pii_policy: str = typer.Option(
            "report", "--pii-policy", help=f"What to do with PII: {' | '.join(PII_POLICIES)}"
        ),
        near_dup: bool = typer.Option(True, "--near-dup/--no-near-dup",
                                      help="Remove near-duplicates (MinHash/LSH)"),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    ) -> None:
        """Clean the committed rows: normalise, dedup, score quality, scan PII, chunk."""
        from rich.console import Console

        from .. import tasks
        from ..clean.pipeline import start_clean

        err = Console(stderr=True)
        try:
            proj = Project.open(project)
            config = CleanConfig(pii_policy=pii_policy, near_dup=near_dup)
        except (ProjectError, CleanConfigError) as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(2) from exc
        task_id = start_clean(proj, config)
        with progress_bar("clean") as update:
            try:
                while True:
                    st = tasks.status(proj, task_id)
                    p = st.progress
                    update(p.get("done") or 0, p.get("total"), p.get("message") or st.state)
                    if st.done:
                        break
                    time.sleep(0.2)
            except KeyboardInterrupt:
                tasks.cancel(proj, task_id)
                st = tasks.wait(proj, task_id, timeout=60)
        if st.state != "succeeded":
            msg = (st.error or {}).get("message", st.state)
            err.print(f"clean {st.state}: {msg} (task {task_id})")
            raise typer.Exit(1)
        report = st.result
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            typer.echo(_summary(report))
        if report["blocked"]:
            raise typer.Exit(3)
