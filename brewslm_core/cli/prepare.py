"""`brewslm prepare PROJECT …`: build the manifest and the train/eval/gold files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _summary(manifest: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"prepared: {manifest.task_profile} "
                        f"(scored by {manifest.output_schema.scoring_mode})")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for split, entry in manifest.files.items():
        table.add_row(split, str(entry.rows), entry.path)
    console.print(table)
    if manifest.excluded:
        console.print(f"left out: {manifest.excluded}")
    if manifest.label_set:
        console.print(f"{len(manifest.label_set)} labels; "
                      f"stratified: {manifest.split_policy.get('stratified')}")
    rare = manifest.split_policy.get("train_only_strata")
    if rare:
        console.print(f"[yellow]too few rows to evaluate (kept in train only): {rare}[/yellow]",
                      markup=True, highlight=False)
    base = manifest.base_model
    console.print(f"planned base model: {base.get('name', base['requested'])}, "
                  f"max_length {manifest.max_length}")
    if manifest.token_stats:
        s = manifest.token_stats
        console.print(f"tokens p50 {s.p50} / p95 {s.p95} / max {s.max}; "
                      f"{s.over_max_length} rows over max_length")
    audit = manifest.supervision_audit
    if audit and audit.by_reason:
        console.print(f"[yellow]supervision audit: {audit.rows_affected} rows lose training "
                      f"signal: {audit.by_reason}[/yellow]")


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT", help="Project directory"),
        task_profile: str = typer.Option(
            None, "--task-profile", help="Task profile (or shape) to prepare; default: the "
            "\\[adapter] preset, else inferred when all rows share one profile"),
        eval_fraction: float = typer.Option(0.1, "--eval-fraction", help="Share of rows for eval"),
        seed: int = typer.Option(None, "--seed", help="Split seed (default: \\[runtime] seed)"),
        base_model: str = typer.Option(None, "--base-model",
                                       help="Planned base model (default: \\[model] base)"),
        max_length: int = typer.Option(None, "--max-length", help="Planned max tokens per row"),
        as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON"),
    ) -> None:
        """Split committed rows into train/eval (+ gold) and write prepared/manifest.json."""
        from ..prepare.build import PrepareError, prepare
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
            manifest = prepare(project, task_profile=task_profile, eval_fraction=eval_fraction,
                               seed=seed, base_model=base_model, max_length=max_length)
        except (ProjectError, PrepareError) as exc:
            if as_json:
                typer.echo(json.dumps({"error": str(exc),
                                       "reason_code": getattr(exc, "reason_code", None)}))
            else:
                typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(manifest.to_json())
        else:
            _summary(manifest)
