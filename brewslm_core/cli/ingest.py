"""`brewslm ingest describe|sample LOCATOR`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..contracts import SentinelRow


def register(app: typer.Typer) -> None:
    ingest = typer.Typer(help="Read any data source: describe it, sample its rows.",
                         no_args_is_help=True)

    def _open(locator: str, project: Path | None):  # type: ignore[no-untyped-def]
        from ..ingest import open_source
        from ..project import Project

        proj = Project.open(project) if project else None
        return open_source(locator, project=proj)

    @ingest.command("describe")
    def describe(
        locator: str = typer.Argument(..., help="kind:PATH (csv:, json:, hf:ID:SPLIT …) or a path"),
        sample: int = typer.Option(5, help="Sample rows to include"),
        project: Path | None = typer.Option(None, help="Project folder (applies its roots)"),
    ) -> None:
        """Rows, sentinel rows, fields with type and fill rate, encoding and notes, as JSON."""
        from ..ingest import IngestError

        try:
            desc = _open(locator, project).describe(sample_size=sample)
        except IngestError as exc:
            typer.echo(f"error [{exc.reason_code}]: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(desc.to_dict(), ensure_ascii=False, indent=2, default=str))

    @ingest.command("sample")
    def sample_cmd(
        locator: str = typer.Argument(..., help="kind:PATH or a path"),
        n: int = typer.Option(20, "-n", help="About how many rows, spread over the whole file"),
        project: Path | None = typer.Option(None, help="Project folder (applies its roots)"),
    ) -> None:
        """~n rows stratified through the source, one JSON line each with its row index."""
        from ..ingest import IngestError, sample_rows

        try:
            picked = sample_rows(_open(locator, project), n)
        except IngestError as exc:
            typer.echo(f"error [{exc.reason_code}]: {exc}", err=True)
            raise typer.Exit(2) from exc
        for index, row in picked:
            body = {"sentinel": row.to_dict()} if isinstance(row, SentinelRow) else row
            typer.echo(json.dumps({"index": index, "row": body}, ensure_ascii=False, default=str))

    app.add_typer(ingest, name="ingest")
