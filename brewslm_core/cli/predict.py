"""`brewslm predict PROJECT RUN INPUT…`: the trained run answers new inputs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

INPUT_HELP = 'Texts, or JSON records such as \'{"question": ..., "context": ...}\''


def _inputs(values: list[str]) -> list[object]:
    """Each input as given; one that is a JSON object is a record (e.g. QA's question + context)."""
    out: list[object] = []
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            try:
                out.append(json.loads(text))
                continue
            except json.JSONDecodeError:
                pass
        out.append(value)
    return out


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        run_id: str = typer.Argument(..., metavar="RUN"),
        inputs: list[str] = typer.Argument(..., metavar="INPUT...", help=INPUT_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON"),
    ) -> None:
        """Predict with a trained run: label + scores, spans, answer + evidence, text or transcript."""
        from ..predict import PredictInputError, RunNotLoadable, predict
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
            out = predict(project, run_id, _inputs(inputs))
        except (ProjectError, RunNotLoadable, PredictInputError, ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(out, ensure_ascii=False, default=str))
            return
        for given, item in zip(inputs, out, strict=True):
            shown = {k: v for k, v in item.items() if k not in ("scores", "category_scores", "evidence")}
            typer.echo(f"{given[:60]!r} -> {json.dumps(shown, ensure_ascii=False, default=str)}")
