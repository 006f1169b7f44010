"""`brewslm events PROJECT …`: list RunEvents or run SQL over them."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import pandas

TABLE_COLUMNS = ("id", "ts", "stage", "severity", "reason_code", "run_id", "actor", "summary")
SEVERITY_STYLE = {"info": "", "warning": "yellow", "error": "red", "critical": "bold red"}


def _plain(value: Any) -> Any:
    """A pandas/numpy cell as a JSON-ready Python value (NaN/NaT become null)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or type(value).__name__ in ("NaTType", "NAType"):
        return None
    return value


def _records(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        rec = {str(k): _plain(v) for k, v in row.items()}
        if isinstance(rec.get("payload"), str):
            try:
                rec["payload"] = json.loads(rec["payload"])
            except ValueError:
                pass  # a payload column the user computed that is not JSON text
        out.append(rec)
    return out


def _cell(value: Any) -> str:
    if isinstance(value, datetime):  # pandas Timestamp too; seconds are enough on screen
        return value.strftime("%Y-%m-%d %H:%M:%S")
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _render_table(frame: pandas.DataFrame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    # Full event rows get the compact timeline columns; --sql output shows what was selected.
    if set(TABLE_COLUMNS) <= set(frame.columns):
        columns = list(TABLE_COLUMNS)
    else:
        columns = [str(c) for c in frame.columns]
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for _, row in frame.iterrows():
        style = SEVERITY_STYLE.get(str(row.get("severity", "")), "")
        table.add_row(*(_cell(row[c]) for c in columns), style=style or None)
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("events")
    def events(
        project: Path = typer.Argument(..., help="Project directory"),
        stage: list[str] = typer.Option(None, "--stage", "-s", help="Only these stages"),
        severity: list[str] = typer.Option(None, "--severity", help="Only these severities"),
        run_id: str = typer.Option(None, "--run-id", "-r", help="Events of this run (or its children)"),
        text: str = typer.Option(None, "--text", "-t", help="Case-insensitive text search"),
        limit: int = typer.Option(500, "--limit", "-n", min=1, help="Newest N events"),
        sql: str = typer.Option(None, "--sql", help="Read-only SQL over the table run_events"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table"),
    ) -> None:
        """List a project's RunEvents (newest first), or run SQL over them."""
        from ..events.db import EventQueryError
        from ..project import Project, ProjectError

        try:
            store = Project.open(project).events
            if sql:
                if stage or severity or run_id or text:
                    raise ValueError("--sql cannot be combined with --stage/--severity/--run-id/--text")
                frame = store.query(sql)
                title = "query"
            else:
                frame = store.list(
                    stage=stage or None, severity=severity or None, run_id=run_id, text=text,
                    limit=limit,
                )
                title = f"RunEvents of {project} (newest first)"
        except (ProjectError, EventQueryError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(_records(frame), ensure_ascii=False, indent=None))
        else:
            _render_table(frame, title)
