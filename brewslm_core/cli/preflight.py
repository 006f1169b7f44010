"""`brewslm preflight PROJECT`: the checks as a table, blockers in red with what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .options import parse_sets

STATUS_STYLE = {"pass": "green", "warn": "yellow", "block": "bold red", "skip": "dim"}


def _show(report: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    verdict = "[green]passed[/green]" if report.passed else "[bold red]blocked[/bold red]"
    table = Table(title=f"preflight {report.run_id} ({report.mode}): {verdict}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for row in report.checks:
        style = STATUS_STYLE.get(row.status, "")
        table.add_row(row.name, f"[{style}]{row.status}[/{style}]", escape(row.detail))
    console.print(table)
    for item in report.blockers:
        console.print(f"[bold red]blocker[/bold red] {item.check}/{item.code}: "
                      f"{escape(item.message)}", highlight=False)
        console.print(f"  [red]what to do:[/red] {escape(item.fix)}", highlight=False)
    for item in report.warnings:
        console.print(f"[yellow]warning[/yellow] {item.check}/{item.code}: "
                      f"{escape(item.message)}", highlight=False)
        console.print(f"  what to do: {escape(item.fix)}", highlight=False)
    est = report.estimate
    if est is not None:
        console.print(
            f"memory: ~{est.total_mb:,.0f} MB of {est.budget_mb:,.0f} MB on {est.device} "
            f"(weights {est.weights_mb:,.0f}, grads {est.gradients_mb:,.0f}, optimizer "
            f"{est.optimizer_mb:,.0f}, activations {est.activations_mb:,.0f}, logits "
            f"{est.logits_mb:,.0f}, framework {est.overhead_mb:,.0f})", highlight=False)
    plan = report.plan
    if plan is not None:
        probe = plan.probe.get("seconds_per_step")
        console.print(
            f"plan: {plan.handler} on {plan.model['name']}, {plan.method}, batch "
            f"{plan.batch_size} x {plan.grad_accum}, {plan.total_steps} steps"
            + (f", {probe} s/step measured (~{plan.estimated_seconds:,.0f} s)" if probe else ""),
            highlight=False)
        if report.plan_path:
            console.print(f"plan file: {report.plan_path}", highlight=False, markup=False)
        console.print(f"launch: {plan.accelerate['launch_command']}", highlight=False,
                      markup=False)


def register(app: typer.Typer) -> None:
    @app.command("preflight")
    def preflight_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT", help="Project directory"),
        strict: bool = typer.Option(
            None, "--strict/--fail-open",
            help="Block on any blocker (strict) or turn blockers into warnings (fail-open); "
                 "default: \\[gates] policy in brewslm.toml"),
        probe: bool = typer.Option(True, "--probe/--no-probe",
                                   help="Measure seconds/step with a 2-step training probe"),
        run_id: str = typer.Option(None, "--run-id", help="Run id for the plan (default: new)"),
        max_memory_mb: float = typer.Option(None, "--max-memory-mb",
                                            help="Memory budget override in MB"),
        sets: list[str] = typer.Option([], "--set", help="TrainConfig override key=value"),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    ) -> None:
        """Check the project can train now (deps, model, memory, capability, gates) and plan it.

        Exits 1 when blocked in strict mode, 2 on a usage error.
        """
        from ..preflight.core import PreflightError, preflight
        from ..project import Project, ProjectError
        from ..train import TrainConfigError

        try:
            project = Project.open(project_dir)
            config = parse_sets(sets) or None
            mode = None if strict is None else ("strict" if strict else "fail-open")
            report = preflight(project, config, mode=mode, probe=probe, run_id=run_id,
                               max_memory_mb=max_memory_mb)
        except (ProjectError, PreflightError, TrainConfigError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            _show(report)
        if not report.passed:
            raise typer.Exit(1)
