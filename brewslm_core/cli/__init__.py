"""`brewslm …`: the command line over the same functions the notebooks call.

One module per command group (``cli/<group>.py: register(app)``); the engine packages know
nothing of typer. Only groups that exist are listed, in pipeline order (the order of
``brewslm --help``).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import typer

from ..project import Project, ProjectError

app = typer.Typer(
    name="brewslm",
    help="BrewSLM: build small language models from your own data, one accountable stage at a time.",
    no_args_is_help=True,
    add_completion=False,
)

GROUPS = (
    "events",
    "models",
    "ingest",
    "introspect",
    "mapping",
    "clean",
    "prepare",
    "preflight",
    "train",
    "predict",
    "evaluate",
    "export",
    "deploy",
    "annotate",
    "coach",
    "autopilot",
)


@app.command()
def init(path: Path, name: str = typer.Option("", help="Project name (default: folder name)")) -> None:
    """Create a project directory with the standard layout."""
    try:
        project = Project.create(path, project={"name": name} if name else {})
    except ProjectError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps({"project": str(project.root), "id": project.id}))


for _group in GROUPS:
    importlib.import_module(f"{__name__}.{_group}").register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
