"""`brewslm …`: the command line over the same functions the notebooks call.

Each stage package contributes its commands through ``<stage>/cli.py: register(app)``, so the
stages stay independent and this file only wires them together.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import typer

from .project import Project, ProjectError

app = typer.Typer(
    name="brewslm",
    help="BrewSLM: build small language models from your own data, one accountable stage at a time.",
    no_args_is_help=True,
    add_completion=False,
)

# Order is the order of the pipeline, which is also the order in `brewslm --help`.
STAGE_CLI_MODULES = (
    "events",
    "models",
    "ingest",
    "introspect",
    "mapping",
    "clean",
    "prepare",
    "preflight",
    "train",
    "evaluate",
    "export",
    "deploy",
    "coach",
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


def _register_stage_commands() -> None:
    for stage in STAGE_CLI_MODULES:
        name = f"{__package__}.{stage}.cli"
        if importlib.util.find_spec(f"{__package__}.{stage}") is None:
            continue  # that stage is not built yet
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(app)


_register_stage_commands()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
