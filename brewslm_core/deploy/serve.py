"""A model server as a background task: the task owns one server process for its lifetime.

``tasks.cancel`` stops it cleanly (SIGTERM, then SIGKILL); ``tasks.kill`` takes the whole
process group. The server's output goes to ``deployments/logs/<deploy_id>.log``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .. import tasks
from ..project import Project
from .store import DeploymentError

SERVE_TARGET = "brewslm_core.deploy.serve:serve_task"
POLL_S = 0.5


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_path(project: Project, deploy_id: str) -> Path:
    return project.deployments_dir / "logs" / f"{deploy_id}.log"


def serve_task(
    ctx: tasks.TaskContext, *, argv: list[str], env: dict[str, str], log: str, cwd: str | None = None
) -> dict[str, Any]:
    """Run ``argv`` until cancelled; fail the task if the server exits on its own."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    ctx.progress(0, None, f"server pid {proc.pid}")
    try:
        while True:
            code = proc.poll()
            if code is not None:
                raise tasks.TaskFailed(None, f"server exited with code {code}; see {log}")
            ctx.check_cancelled()
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_server(
    project: Project, deploy_id: str, argv: list[str], env: dict[str, str], cwd: str | None = None
) -> str:
    """Start the server as a ``deploy`` process task (run from ``cwd``: the bundle folder)."""
    kwargs = {"argv": argv, "env": env, "log": str(log_path(project, deploy_id)), "cwd": cwd}
    return tasks.start(project, SERVE_TARGET, kwargs, kind="deploy", runner="process")


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-n:] if path.is_file() else ""


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own 127.0.0.1 URL
        return json.loads(resp.read().decode())


def wait_ready(
    project: Project, endpoint: str, *, task_id: str | None, deploy_id: str, timeout: float
) -> None:
    """Poll ``GET {endpoint}/models`` until it answers; fail early when the server task died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            get_json(endpoint.rstrip("/") + "/models", timeout=3.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
            pass
        if task_id is not None:
            st = tasks.status(project, task_id)
            if st.done:
                raise DeploymentError(
                    f"the server for {deploy_id} stopped before it was ready ({st.state}: "
                    f"{(st.error or {}).get('message')}); log tail:\n{_tail(log_path(project, deploy_id))}"
                )
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"the server for {deploy_id} was not ready at {endpoint} after {timeout:.0f} s; log tail:\n"
                f"{_tail(log_path(project, deploy_id))}"
            )
        time.sleep(POLL_S)


def stop_server(project: Project, task_id: str | None, timeout: float = 30.0) -> None:
    if not task_id:
        return
    st = tasks.cancel(project, task_id)
    if not st.done:
        try:
            tasks.wait(project, task_id, timeout=timeout)
        except TimeoutError:
            tasks.kill(project, task_id)


def is_running(project: Project, task_id: str | None) -> bool:
    return bool(task_id) and not tasks.status(project, task_id).done
