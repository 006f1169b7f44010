"""Real-browser harness: system Chromium through Playwright, real Voila / JupyterLab servers.

Every server listens on 127.0.0.1 on a free port, with token auth and its own temporary
config/runtime/data dirs. Every page routes off-machine requests to an empty response, so the
"no console errors" checks are real checks (Voila's template asks a CDN for icons).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_harness import screenshot

REPO = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def chromium_path() -> str:
    found = os.environ.get("BREWSLM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("no system Chromium: install it with `apt-get install -y chromium` "
                    "(never `playwright install`), or set BREWSLM_CHROMIUM")
    return found


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 1000}}


# ---- pages: offline routing + console capture ----------------------------------------------
@dataclass
class PageLog:
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@pytest.fixture()
def offline_page(page):  # -> (page, PageLog)
    log = PageLog()

    def route(r):
        host = urlparse(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            r.continue_()
        else:
            log.blocked.append(r.request.url)
            r.fulfill(status=200, body="", content_type="text/plain")

    page.context.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and log.errors.append(m.text))
    page.on("pageerror", lambda exc: log.errors.append(f"pageerror: {exc}"))
    page.set_default_timeout(120_000)  # generous: CI machines run other jobs too
    yield page, log
    if log.errors:
        print("\n[browser console errors]", *log.errors[:20], sep="\n  ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "offline_page" in item.funcargs:
        page, _ = item.funcargs["offline_page"]
        try:  # leave a picture and the page text behind for whoever reads the failure
            screenshot(page, f"FAILED-{item.name}")
            text = page.locator("body").inner_text(timeout=2000)
            report.sections.append(("page text", text[-3000:]))
        except Exception as exc:  # noqa: BLE001 - a dead page must not hide the real failure
            report.sections.append(("page text", f"unavailable: {exc}"))


# ---- servers ---------------------------------------------------------------------------------
@dataclass
class Server:
    url: str  # opens the notebook/dashboard, token included
    base: str
    token: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("config", "runtime", "data", "ipython", "settings", "workspaces"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_PLATFORM_DIRS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env


def _wait_up(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.base}api/status?token={server.token}", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it listens (single-notebook Voila has no /api/status)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer within {timeout}s:\n{server.log()}")


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: start_server("voila" | "lab", notebook_path, env={...}) -> Server."""
    started: list[Server] = []

    def start(kind: str, notebook: Path, env: dict[str, str] | None = None,
              args: list[str] | None = None) -> Server:
        port, token = _free_port(), secrets.token_hex(16)
        home = tmp_path / f"jupyter-{kind}-{port}"
        log_path = home / "server.log"
        environ = _server_env(home, env or {})
        if kind == "voila":
            cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser",
                   f"--port={port}", "--Voila.ip=127.0.0.1", f"--token={token}",
                   "--show_tracebacks=True", *(args or [])]
            url = f"http://127.0.0.1:{port}/?token={token}"
        elif kind == "lab":
            settings = home / "settings" / "@jupyterlab" / "apputils-extension"
            settings.mkdir(parents=True, exist_ok=True)
            (settings / "notification.jupyterlab-settings").write_text(
                json.dumps({"fetchNews": "false", "checkForUpdates": False})
            )
            # Render every cell (JupyterLab 4 leaves off-screen cells out of the DOM by default).
            nb_settings = home / "settings" / "@jupyterlab" / "notebook-extension"
            nb_settings.mkdir(parents=True, exist_ok=True)
            (nb_settings / "tracker.jupyterlab-settings").write_text(
                json.dumps({"windowingMode": "none"}))
            cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                   "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                   f"--ServerApp.root_dir={notebook.parent}", *(args or [])]
            url = f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}"
        else:
            raise ValueError(f"unknown server kind {kind!r}; use 'voila' or 'lab'")
        log_fh = open(log_path, "wb")  # noqa: SIM115 - closed with the process below
        proc = subprocess.Popen(cmd, cwd=notebook.parent, env=environ, stdout=log_fh,
                                stderr=subprocess.STDOUT)
        server = Server(url=url, base=f"http://127.0.0.1:{port}/", token=token, proc=proc,
                        log_path=log_path)
        started.append(server)
        _wait_up(server)
        return server

    yield start
    for server in started:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
