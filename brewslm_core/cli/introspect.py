"""`brewslm introspect LOCATOR`: ranked shape hypotheses, as a table or JSON."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("introspect")
    def introspect_cmd(
        locator: str = typer.Argument(..., help="Source locator, e.g. csv:data/train.csv"),
        n: int = typer.Option(20, "--n", min=1, help="Sample rows to look at"),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list, best first"),
    ) -> None:
        """Rank the shapes LOCATOR could be read as (never picks one for you)."""
        from ..contracts import FORCE_THRESHOLD
        from ..ingest import IngestError
        from ..introspect.core import introspect

        try:
            found = introspect(locator, n=n)
        except (IngestError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps([
                {"shape": h.shape, "confidence": h.confidence, "rationale": h.rationale,
                 "mapping": h.mapping.to_dict()} for h in found], ensure_ascii=False))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Shape hypotheses for {locator} (best first)")
        for col in ("shape", "confidence", "field map", "options", "why"):
            table.add_column(col, overflow="fold")
        for h in found:
            conf = f"{h.confidence:.2f}" + ("" if h.confidence >= FORCE_THRESHOLD else " (force)")
            table.add_row(h.shape, conf, json.dumps(h.mapping.field_map, ensure_ascii=False),
                          json.dumps(h.mapping.options or {}, ensure_ascii=False), h.rationale)
        Console().print(table)
        if not found:
            typer.echo("no shape fits the sampled rows; check the locator and the file")
