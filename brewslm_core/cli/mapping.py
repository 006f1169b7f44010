"""`brewslm map PROJECT LOCATOR --shape S --dry-run|--commit`: the map stage from a shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..common import parse_pairs


def _render_dry_run(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..contracts import ROW_REJECT_CODES

    console = Console()
    console.print(f"[bold]{report.locator}[/bold] as {report.shape} (config {report.config_id}): "
                  f"{report.total} rows, {report.accepted} accepted, {report.rejected} rejected "
                  f"({report.sentinel} unparseable)")
    if not report.groups:
        return
    table = Table(title="Rejected rows by reason")
    for col in ("reason", "count", "meaning", "example"):
        table.add_column(col, overflow="fold")
    for group in report.groups:
        example = ""
        if group.examples:
            first = group.examples[0]
            raw = first.raw if isinstance(first.raw, str) else json.dumps(first.raw,
                                                                          ensure_ascii=False)
            raw = raw if len(raw) <= 80 else raw[:77] + "..."
            example = f"row {first.row_index}: {first.detail}\n  {raw}"
        elif group.reason in report.dropped_reasons:
            example = "(dropped from the sample)"
        table.add_row(group.reason, str(group.count), ROW_REJECT_CODES.get(group.reason, ""),
                      example)
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("map")
    def map_cmd(
        project: Path = typer.Argument(..., help="Project directory"),
        locator: str = typer.Argument(..., help="Source locator, e.g. jsonl:data/rows.jsonl"),
        shape: str = typer.Option(..., "--shape", help="Shape to read the source as"),
        field: list[str] = typer.Option(None, "--field", help="canonical=source_field (repeat)"),
        option: list[str] = typer.Option(None, "--option", help="key=value, JSON values (repeat)"),
        drop: list[str] = typer.Option(None, "--drop", help="Hide a reason from the sample"),
        dry_run_flag: bool = typer.Option(False, "--dry-run", help="Map without writing"),
        commit_flag: bool = typer.Option(False, "--commit", help="Append the accepted rows"),
        force: bool = typer.Option(False, "--force", help="Commit below the 0.80 confidence bar"),
        gold: bool = typer.Option(False, "--gold", help="Mark these rows as gold-set rows"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
    ) -> None:
        """Dry-run or commit LOCATOR read as SHAPE into PROJECT."""
        from ..ingest import IngestError
        from ..mapping.engine import MappingError, commit, dry_run
        from ..project import Project, ProjectError

        if dry_run_flag == commit_flag:
            typer.echo("error: pass exactly one of --dry-run or --commit", err=True)
            raise typer.Exit(2)
        try:
            proj = Project.open(project)
            field_map = parse_pairs(field, "--field", json_values=False) or None
            options = parse_pairs(option, "--option", json_values=True) or None
            if dry_run_flag:
                report = dry_run(locator, shape, field_map, options, drop_reasons=drop or (),
                                 project=proj)
            else:
                result = commit(proj, locator, shape, field_map, options, force=force, gold=gold)
        except (ProjectError, IngestError, MappingError, ValueError, KeyError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if dry_run_flag:
            if as_json:
                typer.echo(json.dumps({"total": report.total, "accepted": report.accepted,
                                       "rejected": report.rejected, "sentinel": report.sentinel,
                                       "by_reason": report.by_reason}))
            else:
                _render_dry_run(report)
        elif as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            typer.echo(f"committed {result.accepted} rows ({result.rejected} rejected) as "
                       f"{result.import_id} into {result.written_path}; event {result.event_id}")
