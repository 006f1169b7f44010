"""`brewslm export …`: write a trained run out as an adapter, merged HF, GGUF or vLLM bundle.

``brewslm export PROJECT RUN --format hf`` is short for ``export create``; ``export list PROJECT``
and ``export show PROJECT EXPORT`` read finished bundles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .options import CreateByDefault, fail


def _summary(bundle: Any) -> str:
    size = sum(f.size for f in bundle.files)
    made = {k: v for k, v in bundle.quantizations.items() if v.status != "unavailable"}
    variants = ", ".join(f"{k}={v.status}" for k, v in made.items())
    return (f"{bundle.export_id} {bundle.format} of {bundle.source_run}: {len(bundle.files)} files, "
            f"{size / 1e6:.1f} MB at {bundle.path}" + (f" ({variants})" if variants else ""))


def register(app: typer.Typer) -> None:
    group = typer.Typer(cls=CreateByDefault, no_args_is_help=True,
                        help="Export a trained run: adapter, merged HF, GGUF (llama.cpp) or a vLLM bundle.")
    app.add_typer(group, name="export")

    @group.command("create")
    def create_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        run_id: str = typer.Argument(..., metavar="RUN"),
        fmt: str = typer.Option(..., "--format", help="adapter | hf | gguf | vllm"),
        quant: str = typer.Option("", "--quant", help="GGUF variants, comma-separated: "
                                  "f16,q8_0,q4_0,q4_1,q5_0,q5_1 (Python), q4_k_m (llama.cpp)"),
        as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON"),
    ) -> None:
        """Export RUN of PROJECT into exports/<export_id>/ with manifest.json and smoke.json."""
        from ..export import ExportError, export
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
            bundle = export(project, run_id, fmt, quant, actor="cli")
        except (ProjectError, ExportError) as exc:
            fail(exc)
            return
        typer.echo(json.dumps(bundle.to_dict()) if as_json else _summary(bundle))

    @group.command("list")
    def list_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        as_json: bool = typer.Option(False, "--json", help="Print the bundles as JSON lines"),
    ) -> None:
        """Finished export bundles, oldest first."""
        from ..export import list_exports
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
        except ProjectError as exc:
            fail(exc)
            return
        for bundle in list_exports(project):
            typer.echo(json.dumps(bundle.to_dict()) if as_json else _summary(bundle))

    @group.command("show")
    def show_command(
        project_dir: Path = typer.Argument(..., metavar="PROJECT"),
        export_id: str = typer.Argument(..., metavar="EXPORT"),
    ) -> None:
        """One bundle's manifest and its smoke record, checked against the files on disk."""
        from ..export import load_bundle, verify_files
        from ..project import Project, ProjectError

        try:
            project = Project.open(project_dir)
            bundle = load_bundle(project, export_id)
        except (ProjectError, FileNotFoundError, ValueError) as exc:
            fail(exc)
            return
        smoke_path = Path(bundle.path) / "smoke.json"
        smoke = json.loads(smoke_path.read_text(encoding="utf-8")) if smoke_path.is_file() else None
        typer.echo(json.dumps({**bundle.to_dict(), "smoke": smoke, "file_problems": verify_files(bundle)}))
