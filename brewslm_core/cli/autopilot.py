"""`brewslm autopilot LOCATOR --task … [--base …] [--strict] [--project DIR]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("autopilot")
    def autopilot_command(
        locator: str = typer.Argument(..., help="The data, e.g. csv:data/train.csv"),
        task: str = typer.Option(..., "--task", help="Task profile (classification, qa, seq2seq …)"),
        base: str = typer.Option(None, "--base", help="Base model (default: the task's offline default)"),
        strict: bool = typer.Option(False, "--strict", help="Refuse every repair instead of applying it"),
        project_dir: Path = typer.Option(Path("."), "--project", help="Project directory (created if "
                                                                       "missing)"),
        sets: list[str] = typer.Option(None, "--set", help="Train option key=value (repeatable)"),
        max_drop: float = typer.Option(0.2, "--max-drop", help="Largest share of rows it may drop"),
        no_probe: bool = typer.Option(False, "--no-probe", help="Skip preflight's 2-step probe"),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    ) -> None:
        """Ingest → introspect → map → clean → prepare → preflight → train → eval (→ export)."""
        from rich.console import Console

        from ..autopilot import STEPS, autopilot, plan
        from ..common import parse_pairs
        from ..project import Project, ProjectError

        console = Console(stderr=as_json)
        try:
            train = parse_pairs(sets or [])
            project = Project.open_or_create(project_dir)
        except (ProjectError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        console.print(f"autopilot plan ({len(STEPS)} steps):", markup=False)
        for n, line in enumerate(plan(locator, task, strict=strict, base=base), 1):
            console.print(f"  {n}. {line}", markup=False)

        def progress(done: int, total: int, message: str) -> None:
            console.print(f"[{done}/{total}] {message}", markup=False)

        result = autopilot(project, locator, task, base=base, strict=strict, max_drop_share=max_drop,
                           train=train, probe=not no_probe, progress=progress)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
        for r in result.repairs:
            console.print(f"repair at {r.step}: {r.what}", style="yellow", markup=False)
        if result.status == "refused":
            refusal = result.refusal or {}
            console.print(f"stopped ({refusal.get('code')}): {refusal.get('message')}",
                          style="bold red", markup=False)
            raise typer.Exit(3)
        console.print(f"done: {result.run_id} {result.outputs}", style="green", markup=False)
