"""`brewslm train …`: run from the manifest, capture a teacher, cancel a run, print its trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from .options import parse_sets
from .progress import progress_bar


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Train a model on the prepared manifest.", no_args_is_help=True)
    app.add_typer(group, name="train")

    @group.command("run")
    def run_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        sets: list[str] = typer.Option([], "--set", help="Config override key=value (repeat)"),
        resume: str = typer.Option(None, "--resume", help="Run id to resume from its checkpoint"),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
    ) -> None:
        """Train now (in this process) and print the outcome."""
        from ..project import Project, ProjectError
        from ..train import TrainConfigError, train_project

        # Under torchrun/accelerate every rank runs this; only rank 0 reports.
        quiet = int(os.environ.get("RANK", "0")) != 0
        try:
            project = Project.open(project_dir)
            with progress_bar("train", disable=as_json or quiet) as progress:
                result = train_project(
                    project, parse_sets(sets), run_id=resume, resume=resume is not None, progress=progress
                )
        except (ProjectError, TrainConfigError, ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if quiet:
            pass
        elif as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(
                f"{result.run_id}: {result.status} after {result.steps} steps, "
                f"final train loss {result.final_train_loss}"
            )
            if result.error:
                typer.echo(f"  {result.reason_code}: {result.error}")
        if result.status != "completed":
            raise typer.Exit(1)

    @group.command("capture-teacher")
    def capture_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        teacher: str = typer.Option("auto", "--teacher", help="Model folder, run id, or auto"),
        top_k: int = typer.Option(8, "--top-k", help="Teacher tokens kept per position"),
        max_length: int = typer.Option(None, "--max-length", help="Default: the manifest's"),
        student: str = typer.Option(None, "--student", help="Check this base's tokenizer now"),
        as_json: bool = typer.Option(False, "--json", help="Print the capture as JSON"),
    ) -> None:
        """Capture a teacher's top-k logprobs on the train split, for distillation."""
        from ..models import ModelNotAvailableError
        from ..prepare import ManifestError
        from ..project import Project, ProjectError
        from ..train import capture_teacher

        try:
            project = Project.open(project_dir)
            with progress_bar("capture", disable=as_json) as progress:
                capture = capture_teacher(
                    project, teacher, top_k=top_k, max_length=max_length, student=student, progress=progress
                )
        except (ProjectError, ManifestError, ModelNotAvailableError, ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(capture.to_dict()))
            return
        typer.echo(
            f"{capture.capture_id}: top-{capture.top_k} at {capture.positions} positions of "
            f"{capture.examples} examples ({capture.skipped} rows skipped)"
        )
        typer.echo(f"  train with it: --set distill_from={capture.capture_id}")
        typer.echo(f"  e.g. brewslm train run {project_dir} --set distill_from={capture.capture_id}")

    @group.command("cancel")
    def cancel_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"), run_id: str = typer.Argument(...)
    ) -> None:
        """Ask a running run to stop; it checkpoints and stops within one step."""
        from ..project import Project
        from ..train.engine import CANCEL_FILE

        run = Project.open(project_dir).run_dir(run_id)
        if not run.is_dir():
            typer.echo(f"error: no run {run_id!r} in {project_dir}", err=True)
            raise typer.Exit(2)
        (run / CANCEL_FILE).touch()
        typer.echo(f"cancel requested for {run_id}")

    @group.command("trace")
    def trace_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        run_id: str = typer.Argument(...),
        split: str = typer.Option(None, help="train or eval"),
    ) -> None:
        """Print a run's trace lines (JSON, one per line)."""
        from ..project import Project
        from ..train.trace import read_trace

        for line in read_trace(Project.open(project_dir).run_dir(run_id) / "trace.jsonl", split):
            typer.echo(json.dumps(line))
