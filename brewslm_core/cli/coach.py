"""`brewslm coach PROJECT [STAGE] [--json]`: Coach Mode suggestions; `coach run` executes one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

STYLE = {"info": "", "warning": "yellow", "critical": "bold red"}


def register(app: typer.Typer) -> None:
    @app.command("coach")
    def coach_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT", help="Project directory"),
        stage: str = typer.Argument(None, help="data | cleaning | gold_set | training | eval "
                                               "(default: all five)"),
        as_json: bool = typer.Option(False, "--json", help="Print a list of suggestion dicts"),
        run: int = typer.Option(None, "--run", help="Execute the Nth suggestion's action (1 = first)"),
    ) -> None:
        """What to do next, per workflow stage, from the project's own numbers (read-only)."""
        from .. import coach
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
            stages = [stage] if stage else list(coach.COACH_STAGES)
            items = [(st, s) for st in stages for s in coach.suggest(project, st)]
        except (ProjectError, coach.UnknownStageError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if run is not None:
            if not 1 <= run <= len(items):
                typer.echo(f"error: --run must be between 1 and {len(items)}", err=True)
                raise typer.Exit(2)
            try:
                result = coach.execute(project, items[run - 1][1].action)
            except (ValueError, LookupError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
            return
        if as_json:
            typer.echo(json.dumps([s.to_dict() for _, s in items], ensure_ascii=False))
            return
        from rich.console import Console

        console = Console()
        for n, (st, s) in enumerate(items, 1):
            console.print(f"{n:>2}. [{st}] {s.severity.upper()}: {s.title}", style=STYLE[s.severity] or None,
                          markup=False)
            console.print(f"    {s.body}", markup=False)
            console.print(f"    → {s.action.label} ({s.action.kind})", markup=False)
