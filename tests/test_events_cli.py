"""`brewslm events PROJECT …` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from brewslm_core import Project
from brewslm_core.cli import events as events_cli


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # keeps `events` a subcommand, as in the real CLI
        """test app"""

    events_cli.register(app)
    return app


@pytest.fixture()
def proj(tmp_path: Path) -> Project:
    project = Project.create(tmp_path / "proj")
    ev = project.events
    ev.append(stage="ingestion", severity="info", reason_code="dataset_import_run",
              summary="imported 3 rows", run_id="import-1", payload={"accepted": 3})
    ev.append(stage="training", severity="error", reason_code="training_oom",
              summary="out of memory", run_id="exp-1", payload={"step": 12})
    ev.append(stage="training", severity="info", summary="retry with batch 2", run_id="exp-2")
    return project


def _json(result) -> list[dict]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_lists_newest_first_with_parsed_payload(app: typer.Typer, proj: Project) -> None:
    rows = _json(CliRunner().invoke(app, ["events", str(proj.root), "--json"]))
    assert [r["id"] for r in rows] == [3, 2, 1]
    assert rows[1]["payload"] == {"step": 12}
    assert rows[1]["reason_code"] == "training_oom"
    assert rows[0]["reason_code"] is None
    assert rows[2]["ts"].startswith(proj.events.get(1).ts.isoformat()[:19])
    assert rows[2]["project_id"] == proj.id


def test_filters(app: typer.Typer, proj: Project) -> None:
    runner = CliRunner()
    base = ["events", str(proj.root), "--json"]
    assert [r["id"] for r in _json(runner.invoke(app, [*base, "--stage", "training"]))] == [3, 2]
    assert [r["id"] for r in _json(runner.invoke(app, [*base, "--severity", "error"]))] == [2]
    assert [r["id"] for r in _json(runner.invoke(app, [*base, "--run-id", "exp-2"]))] == [3]
    assert [r["id"] for r in _json(runner.invoke(app, [*base, "--text", "MEMORY"]))] == [2]
    both = runner.invoke(app, [*base, "--stage", "ingestion", "--stage", "training", "-n", "2"])
    assert [r["id"] for r in _json(both)] == [3, 2]


def test_sql_option(app: typer.Typer, proj: Project) -> None:
    sql = "SELECT stage, count(*) AS n FROM run_events GROUP BY stage ORDER BY stage"
    rows = _json(CliRunner().invoke(app, ["events", str(proj.root), "--sql", sql, "--json"]))
    assert rows == [{"stage": "ingestion", "n": 1}, {"stage": "training", "n": 2}]


def test_default_output_is_a_table(app: typer.Typer, proj: Project) -> None:
    result = CliRunner().invoke(app, ["events", str(proj.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "training_oom" in result.stdout and "imported 3 rows" in result.stdout
    assert "reason_code" in result.stdout  # the header row
    lines = result.stdout.splitlines()
    assert lines.index(next(x for x in lines if "retry with batch 2" in x)) < lines.index(
        next(x for x in lines if "imported 3 rows" in x)
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sql", "SELEC oops"], "SQL error"),
        (["--sql", "DELETE FROM run_events"], "append-only"),
        (["--stage", "trainig"], "did you mean 'training'"),
        (["--sql", "SELECT 1", "--stage", "training"], "cannot be combined"),
    ],
)
def test_errors_exit_2_with_a_message(
    app: typer.Typer, proj: Project, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["events", str(proj.root), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(proj.events.list(limit=None)) == 3  # nothing changed


def test_missing_project_exits_2(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["events", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "not a BrewSLM project" in result.stderr


def test_real_cli_has_the_events_command(proj: Project) -> None:
    from brewslm_core.cli import app as real_app

    rows = _json(CliRunner().invoke(real_app, ["events", str(proj.root), "--json", "-n", "1"]))
    assert [r["id"] for r in rows] == [3]
