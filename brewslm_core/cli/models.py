"""`brewslm models …`: see which base model a profile gets, and convert the defaults ahead of
time (e.g. while building an image, so the first training run does not wait for it)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..models.ref import ModelNotAvailableError


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="Offline base models: resolve names, convert defaults into the cache.",
                         no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("resolve")
    def resolve_command(
        base: str = typer.Argument("auto", help='"auto", an alias, a model folder or a hub id'),
        profile: str = typer.Option("classification", "--profile", help="Task profile"),
    ) -> None:
        """Print the ModelRef that BASE resolves to for PROFILE (nothing is converted)."""
        from ..models.resolve import resolve_base
        from ..registry import UnknownNameError

        try:
            ref = resolve_base(base, profile)
        except (ModelNotAvailableError, UnknownNameError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(ref.to_dict()))

    @models.command("prepare")
    def prepare_command(
        names: list[str] = typer.Argument(
            None, help="Defaults to convert: smollm2, whisper-tiny.en (default: both)"
        ),
    ) -> None:
        """Convert the offline defaults into the cache once; prints each ready folder."""
        from ..models.build import read_marker
        from ..models.load import materialize
        from ..models.resolve import resolve_base

        for name in names or ["smollm2", "whisper-tiny.en"]:
            try:
                folder = materialize(resolve_base(name))
            except ModelNotAvailableError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
            marker = read_marker(Path(folder)) or {}
            typer.echo(json.dumps({"name": name, "path": folder,
                                   "conversion_seconds": marker.get("seconds")}))
