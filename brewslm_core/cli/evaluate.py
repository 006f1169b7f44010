"""`brewslm eval PROJECT RUN [--pack NAME|FILE]` and `brewslm eval init PROJECT`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

USAGE = "usage: brewslm eval PROJECT RUN [--pack NAME|FILE] [--json]  |  brewslm eval init PROJECT [--name N]"


def _show(report) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"{report.eval_id} of {report.run_id} (pack {report.pack or '-'}, {report.n_examples} rows "
               f"from {report.dataset.get('name')})")
    headline = {k: v for k, v in report.metrics.items() if isinstance(v, (int, float)) and v is not None}
    typer.echo("  " + ", ".join(f"{k}={v:.4g}" for k, v in list(headline.items())[:12]))
    for gate in report.gates:
        value = "n/a" if gate.value is None else f"{gate.value:.4g}"
        mark = "pass" if gate.passed else "FAIL"
        typer.echo(f"  [{mark}] {gate.metric} {gate.op} {gate.threshold:g}: {value}")
    rate = "n/a" if report.pass_rate is None else f"{report.pass_rate:.1%}"
    typer.echo(f"  pass rate {rate}; promotable: {report.promotable}"
               + (f" ({report.not_promotable_reason})" if report.not_promotable_reason else ""))
    for c in report.failure_clusters[:5]:
        typer.echo(f"  cluster {c.cluster_id} ({c.size}): {c.label}")
    for w in report.warnings:
        typer.echo(f"  warning: {w}")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        args: list[str] = typer.Argument(..., metavar="PROJECT RUN | init PROJECT"),
        pack: str = typer.Option(None, "--pack", help="Pack name in evals/ or a .yaml/.json file"),
        name: str = typer.Option("default", "--name", help="eval init: the pack name to write"),
        force: bool = typer.Option(False, "--force", help="eval init: overwrite an existing pack"),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    ) -> None:
        """Score a run against an eval pack's gates (or `eval init PROJECT` to write a starter pack)."""
        from ..evaluate import EvalDatasetMissing, EvalPackError, EvalRuntimeError, evaluate, init_pack
        from ..predict import RunNotLoadable
        from ..prepare import ManifestError
        from ..project import Project, ProjectError

        try:
            if args and args[0] == "init":
                if len(args) != 2:
                    raise typer.BadParameter(USAGE)
                path = init_pack(Project.open(args[1]), name=name, force=force)
                typer.echo(json.dumps({"pack": str(path)}) if as_json else f"wrote {path}")
                return
            if len(args) != 2:
                raise typer.BadParameter(USAGE)
            report = evaluate(Project.open(Path(args[0])), args[1], pack)
        except (EvalPackError, EvalDatasetMissing, RunNotLoadable, ManifestError, ProjectError,
                FileNotFoundError, FileExistsError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except EvalRuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        if as_json:
            typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
        else:
            _show(report)
        if report.gates and not report.promotable:
            raise typer.Exit(1)  # a failed gate is a failing exit status (CI can gate on it)
