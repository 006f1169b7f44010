"""`brewslm annotate …`: annotation jobs over committed or eval rows, labels, promotion to gold."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from exc


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Label rows in a job queue and promote them to the gold set.",
                        no_args_is_help=True)
    app.add_typer(group, name="annotate")

    @group.command("create")
    def create(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        name: str = typer.Argument(..., help="Job name"),
        rows: int = typer.Option(50, "--rows", help="Rows to put in the queue"),
        source: str = typer.Option("committed", "--source", help="committed | eval"),
        labels: str = typer.Option("", "--labels", help="Comma-separated label set "
                                                        "(default: the labels the rows carry)"),
        actor: str = typer.Option("cli", "--actor", help="Who creates the job"),
    ) -> None:
        """Create a job: RUN rows picked (seeded) from the committed rows or the eval split."""
        from ..annotate import AnnotationError, create_job
        from ..project import Project, ProjectError

        try:
            job = create_job(Project.open(project_dir), name, target_rows=rows, source=source,
                             labels=[x for x in labels.split(",") if x] or None, actor=actor)
        except (AnnotationError, ProjectError, FileNotFoundError, RuntimeError) as exc:
            _fail(exc)
        typer.echo(json.dumps(job.to_dict(), ensure_ascii=False))

    @group.command("list")
    def list_command(project_dir: Path = typer.Argument(..., metavar="PROJECT")) -> None:
        """Every job with its labelled and promoted counts."""
        from ..annotate import list_jobs
        from ..project import Project, ProjectError

        try:
            jobs = list_jobs(Project.open(project_dir))
        except ProjectError as exc:
            _fail(exc)
        typer.echo(json.dumps([j.to_dict() for j in jobs], ensure_ascii=False))

    @group.command("next")
    def next_command(project_dir: Path = typer.Argument(..., metavar="PROJECT"),
                     job_id: str = typer.Argument(...),
                     n: int = typer.Option(10, "-n", help="How many pending items")) -> None:
        """Pending items of a job (id, text, the row's current label)."""
        from ..annotate import AnnotationError, items
        from ..project import Project, ProjectError

        try:
            pending = items(Project.open(project_dir), job_id, pending_only=True)[:n]
        except (AnnotationError, ProjectError) as exc:
            _fail(exc)
        typer.echo(json.dumps([i.to_dict() for i in pending], ensure_ascii=False))

    @group.command("label")
    def label_command(project_dir: Path = typer.Argument(..., metavar="PROJECT"),
                      job_id: str = typer.Argument(...), item_id: int = typer.Argument(...),
                      label: str = typer.Argument(...),
                      actor: str = typer.Option(..., "--actor", help="The reviewer")) -> None:
        """Submit one label (recorded with the reviewer as actor)."""
        from ..annotate import AnnotationError, submit_label
        from ..project import Project, ProjectError

        try:
            item = submit_label(Project.open(project_dir), job_id, item_id, label, actor=actor)
        except (AnnotationError, ProjectError) as exc:
            _fail(exc)
        typer.echo(json.dumps(item.to_dict(), ensure_ascii=False))

    @group.command("promote")
    def promote_command(project_dir: Path = typer.Argument(..., metavar="PROJECT"),
                        job_id: str = typer.Argument(...),
                        actor: str = typer.Option("cli", "--actor")) -> None:
        """Promote labelled rows to the gold set (re-run prepare to split them out)."""
        from ..annotate import AnnotationError, promote
        from ..project import Project, ProjectError

        try:
            count = promote(Project.open(project_dir), job_id, actor=actor)
        except (AnnotationError, ProjectError) as exc:
            _fail(exc)
        typer.echo(json.dumps({"job_id": job_id, "promoted": count}))
