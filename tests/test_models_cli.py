"""`brewslm models resolve|prepare` through typer, on a private app (the lead wires the real one)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from brewslm_core.cli.models import register


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # a callback keeps "models" as a named sub-command
        pass

    register(app)
    return app


def test_resolve_prints_the_model_ref():
    result = CliRunner().invoke(_app(), ["models", "resolve", "auto", "--profile", "qa"])
    assert result.exit_code == 0, result.output
    ref = json.loads(result.output)
    assert (ref["family"], ref["kind"], ref["source"]) == ("minilm", "encoder", "package")


def test_resolve_bad_profile_exits_2_with_a_hint():
    result = CliRunner().invoke(_app(), ["models", "resolve", "auto", "--profile", "rgaa"])
    assert result.exit_code == 2
    assert "unknown task profile" in result.output


def test_prepare_reports_ready_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("BREWSLM_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(_app(), ["models", "prepare", "minilm"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert (Path(line["path"]) / "model.safetensors").is_file()
    assert line["conversion_seconds"] is None  # MiniLM ships ready; nothing was converted
    assert list(tmp_path.iterdir()) == []
