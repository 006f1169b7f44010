"""Background tasks with task_id polling: clean, train, eval and export run through here.

How to use it (Train/Eval/Export reuse exactly this)::

    from brewslm_core import tasks

    def my_work(ctx: tasks.TaskContext, *, steps: int) -> dict:   # in an importable module
        for i in range(steps):
            ctx.check_cancelled()            # raises TaskCancelled once cancel() was asked
            ...                              # one unit of work
            ctx.progress(i + 1, steps, "step")
        return {"done": steps}               # JSON-able (a Contract is turned into a dict)

    task_id = tasks.start(project, "my_pkg.my_mod:my_work", {"steps": 10}, kind="train",
                          runner="process")   # or runner="thread" (in-kernel, cheap)
    tasks.status(project, task_id)            # -> TaskStatus (state, progress, result, error)
    tasks.cancel(project, task_id)            # cooperative; works from any process
    tasks.wait(project, task_id, timeout=60)  # -> final TaskStatus
    tasks.list_tasks(project)

The work is named by a ``"module:function"`` string plus JSON kwargs, so a fresh worker process
can import and call it: ``function(ctx, **kwargs)``. ``ctx.project`` is the open Project.
A work function may raise ``TaskFailed(reason_code, message)`` to fail with a specific
taxonomy code (e.g. ``training_oom``); any other exception fails the task with the kind's
default code (``KIND_REASONS``).

State lives in ``project.tasks_dir/<task_id>.json``, rewritten atomically (temp file +
``os.replace``) under an flock, so a CLI or dashboard in another process can poll it. Cancel
writes ``<task_id>.cancel``; the worker sees it at its next ``check_cancelled()``. The worker
refreshes a heartbeat every ``HEARTBEAT_S`` seconds from a side thread; a task whose worker
process is gone (or a zombie), or whose heartbeat is older than ``STALE_S``, is reported
``failed`` with message "worker process died", never ``running`` forever. A process task's
stderr goes to ``<task_id>.log``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import atomic_write_text, file_lock
from .contracts.base import Contract, contract
from .project import Project

STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
RUNNERS: tuple[str, ...] = ("thread", "process")

HEARTBEAT_S = 2.0  # how often a live worker touches its state file
STALE_S = 60.0  # a heartbeat older than this means the worker is wedged or gone
_PROGRESS_WRITE_S = 0.25  # progress is persisted at most this often (plus at the end)
_CANCEL_POLL_S = 0.1  # the cancel-request file is stat()ed at most this often

# Default reason codes per task kind: (failed, cancelled). Kinds outside this table fail with
# reason_code None (the caller decides whether to emit an event).
KIND_REASONS: dict[str, tuple[str | None, str | None]] = {
    "train": ("training_runtime_error", "training_cancelled"),
    "eval": ("eval_runtime_error", None),
    "export": ("export_run_failed", None),
    "clean": (None, None),
}


class TaskError(Exception):
    """A task id is unknown or a request about a task is invalid."""


class TaskCancelled(Exception):
    """Raised inside the work by ``ctx.check_cancelled()`` after a cancel request."""


class TaskFailed(Exception):
    """Raise from work to fail with a specific taxonomy reason code."""

    def __init__(self, reason_code: str | None, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@contract
class TaskStatus(Contract):
    task_id: str
    kind: str
    target: str
    runner: str
    state: str
    progress: dict[str, Any]  # {"done": int, "total": int | None, "message": str}
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: Any
    error: dict[str, Any] | None  # {"reason_code", "message", "traceback"}
    pid: int | None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


# ---- state file ---------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat()


def _state_path(project: Project, task_id: str) -> Path:
    return project.tasks_dir / f"{task_id}.json"


def _cancel_path(project: Project, task_id: str) -> Path:
    return project.tasks_dir / f"{task_id}.cancel"


def _log_path(project: Project, task_id: str) -> Path:
    return project.tasks_dir / f"{task_id}.log"


def _read(project: Project, task_id: str) -> dict[str, Any]:
    path = _state_path(project, task_id)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in project.tasks_dir.glob("*.json"))[-5:])
        raise TaskError(
            f"no task {task_id!r} in {project.tasks_dir} (recent: {known or 'none'})"
        ) from None


def _write(project: Project, data: dict[str, Any]) -> None:
    path = _state_path(project, data["task_id"])
    # atomic: readers see the old or the new file, never half of one
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, default=str))


def _update(project: Project, task_id: str, **changes: Any) -> dict[str, Any]:
    """Read-modify-write under the task lock. A terminal state is never overwritten."""
    with file_lock(project.tasks_dir / f"{task_id}.lock"):
        data = _read(project, task_id)
        if data["state"] in TERMINAL:
            return data
        data.update(changes)
        _write(project, data)
        return data


def _to_status(data: dict[str, Any]) -> TaskStatus:
    def ts(key: str) -> datetime | None:
        return datetime.fromisoformat(data[key]) if data.get(key) else None

    return TaskStatus(
        task_id=data["task_id"],
        kind=data["kind"],
        target=data["target"],
        runner=data["runner"],
        state=data["state"],
        progress=dict(data["progress"]),
        created_at=ts("created_at"),  # type: ignore[arg-type]
        started_at=ts("started_at"),
        finished_at=ts("finished_at"),
        result=data.get("result"),
        error=data.get("error"),
        pid=data.get("pid"),
    )


# ---- liveness -----------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # A killed child stays a zombie until its parent reaps it; that is not "alive".
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _died_error(kind: str, detail: str) -> dict[str, Any]:
    return {
        "reason_code": KIND_REASONS.get(kind, (None, None))[0],
        "message": f"worker process died ({detail})",
        "traceback": None,
    }


def _check_liveness(project: Project, data: dict[str, Any]) -> dict[str, Any]:
    """Turn a non-terminal task whose worker is gone into ``failed`` (persisted)."""
    if data["state"] in TERMINAL:
        return data
    pid, beat = data.get("pid"), data.get("heartbeat")
    detail = None
    if pid is not None and data.get("host") == os.uname().nodename and not _pid_alive(pid):
        detail = f"pid {pid} is gone"
    elif beat is not None and time.time() - beat > STALE_S:
        detail = f"no heartbeat for {time.time() - beat:.0f} s"
    if detail is None:
        return data
    return _update(
        project,
        data["task_id"],
        state="failed",
        finished_at=_now(),
        error=_died_error(data["kind"], detail),
    )


# ---- the context the work sees ------------------------------------------------------------
class TaskContext:
    """Handed to the work function: progress reporting and cooperative cancellation."""

    def __init__(self, project: Project, task_id: str, cancel_event: threading.Event | None = None):
        self.project = project
        self.task_id = task_id
        self._cancel_event = cancel_event or threading.Event()
        self._cancel_file = _cancel_path(project, task_id)
        self._last_cancel_poll = 0.0
        self._last_write = 0.0
        self._progress = {"done": 0, "total": None, "message": ""}

    @property
    def cancel_requested(self) -> bool:
        if self._cancel_event.is_set():
            return True
        now = time.monotonic()
        if now - self._last_cancel_poll >= _CANCEL_POLL_S:
            self._last_cancel_poll = now
            if self._cancel_file.exists():
                self._cancel_event.set()
        return self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise TaskCancelled if someone asked to cancel this task. Call it between units."""
        if self.cancel_requested:
            raise TaskCancelled(self.task_id)

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress; persisted at most every 0.25 s, so call it as often as you like."""
        self._progress = {"done": int(done), "total": total, "message": str(message)}
        now = time.monotonic()
        if now - self._last_write >= _PROGRESS_WRITE_S or (total is not None and done >= total):
            self._last_write = now
            _update(self.project, self.task_id, progress=self._progress, heartbeat=time.time())


class NullContext:
    """A context for running work inline (no task): never cancelled, progress ignored."""

    project: Project | None = None
    task_id = None
    cancel_requested = False

    def check_cancelled(self) -> None:
        return None

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        return None


# ---- running ------------------------------------------------------------------------------
def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; a clear error says what is wrong."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise TaskError(f"task target {target!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskError(f"cannot import task module {module_name!r}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise TaskError(f"{module_name!r} has no callable {attr!r}")
    return fn


def _heartbeat_loop(project: Project, task_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            _update(project, task_id, heartbeat=time.time())
        except Exception:  # noqa: BLE001 - a missed heartbeat must not kill the work
            pass


def _execute(project: Project, task_id: str, cancel_event: threading.Event | None = None) -> None:
    """Run one task to a terminal state. Used by both runners."""
    data = _update(
        project,
        task_id,
        state="running",
        started_at=_now(),
        pid=os.getpid(),
        host=os.uname().nodename,
        heartbeat=time.time(),
    )
    if data["state"] != "running":
        return
    failed_code, cancelled_code = KIND_REASONS.get(data["kind"], (None, None))
    ctx = TaskContext(project, task_id, cancel_event)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat_loop, args=(project, task_id, stop), daemon=True)
    beat.start()
    try:
        ctx.check_cancelled()  # cancelled while queued
        fn = resolve_target(data["target"])
        result = fn(ctx, **data["kwargs"])
        if isinstance(result, Contract):
            result = result.to_dict()
        json.dumps(result)  # fail here, not in the state write, if it is not JSON
        final: dict[str, Any] = {"state": "succeeded", "result": result, "progress": ctx._progress}
    except TaskCancelled:
        final = {
            "state": "cancelled",
            "progress": ctx._progress,
            "error": {"reason_code": cancelled_code, "message": "cancelled on request",
                      "traceback": None},
        }
    except TaskFailed as exc:
        final = {
            "state": "failed",
            "error": {"reason_code": exc.reason_code, "message": exc.message,
                      "traceback": traceback.format_exc()},
        }
    except BaseException as exc:  # noqa: BLE001 - every failure must land in the state file
        final = {
            "state": "failed",
            "error": {"reason_code": failed_code, "message": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()},
        }
    finally:
        stop.set()
    _update(project, task_id, finished_at=_now(), heartbeat=time.time(), **final)


_CANCEL_EVENTS: dict[tuple[str, str], threading.Event] = {}


def start(
    project: Project,
    target: str,
    kwargs: dict[str, Any] | None = None,
    *,
    kind: str,
    runner: str = "thread",
) -> str:
    """Start ``target(ctx, **kwargs)`` in the background and return its task_id at once.

    ``runner="thread"`` runs in this process (cheap, shares memory); ``runner="process"`` runs
    in a fresh Python process (survives kernel work, killable with ``kill()``, OOM-isolated).
    """
    if runner not in RUNNERS:
        raise TaskError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    kwargs = dict(kwargs or {})
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise TaskError(f"task kwargs must be JSON data (a process re-reads them): {exc}") from exc
    resolve_target(target)  # fail now, in the caller, on a typo
    project.tasks_dir.mkdir(parents=True, exist_ok=True)
    task_id = f"{kind}-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    _write(
        project,
        {
            "task_id": task_id,
            "kind": kind,
            "target": target,
            "kwargs": kwargs,
            "runner": runner,
            "state": "queued",
            "progress": {"done": 0, "total": None, "message": "queued"},
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "result": None,
            "error": None,
            "pid": None,
            "host": os.uname().nodename,
            "heartbeat": time.time(),
        },
    )
    if runner == "thread":
        key = (str(project.root), task_id)
        event = _CANCEL_EVENTS[key] = threading.Event()

        def run() -> None:
            try:
                _execute(project, task_id, event)
            finally:
                _CANCEL_EVENTS.pop(key, None)

        threading.Thread(target=run, name=task_id, daemon=True).start()
    else:
        _spawn(project, task_id)
    return task_id


def _spawn(project: Project, task_id: str) -> None:
    pkg_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    code = "import sys; from brewslm_core.tasks import _worker_main; _worker_main(sys.argv[1:])"
    with open(_log_path(project, task_id), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(project.root), task_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # a Ctrl-C in the kernel does not reach the worker
        )
    _update(project, task_id, pid=proc.pid)

    def reap() -> None:
        # Reaps the child (no zombie) and records a death the child could not record itself.
        code = proc.wait()
        data = _read(project, task_id)
        if data["state"] not in TERMINAL:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            _update(project, task_id, state="failed", finished_at=_now(),
                    error=_died_error(data["kind"], how))

    threading.Thread(target=reap, name=f"reap-{task_id}", daemon=True).start()


def _worker_main(argv: list[str]) -> None:
    root, task_id = argv
    project = Project.open(root)
    _execute(project, task_id)


# ---- querying and control -----------------------------------------------------------------
def status(project: Project, task_id: str) -> TaskStatus:
    """The task's current state, read from disk (works from any process)."""
    return _to_status(_check_liveness(project, _read(project, task_id)))


def cancel(project: Project, task_id: str) -> TaskStatus:
    """Ask the task to stop; it ends ``cancelled`` at its next ``check_cancelled()``."""
    data = _read(project, task_id)
    if data["state"] not in TERMINAL:
        _cancel_path(project, task_id).touch()
        event = _CANCEL_EVENTS.get((str(project.root), task_id))
        if event is not None:
            event.set()
    return status(project, task_id)


def kill(project: Project, task_id: str) -> TaskStatus:
    """Stop a process task at once with SIGKILL to its process group (for work that never
    checks for cancel)."""
    data = _read(project, task_id)
    if data["runner"] != "process":
        raise TaskError(f"task {task_id} runs in a thread; use cancel() (threads cannot be killed)")
    if data["state"] not in TERMINAL and data.get("pid"):
        try:
            # The worker leads its own session: kill its whole group, so processes it started
            # (e.g. `accelerate launch` ranks) go too.
            os.killpg(data["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(data["pid"], signal.SIGKILL)
        err = {"reason_code": KIND_REASONS.get(data["kind"], (None, None))[1],
               "message": "killed on request", "traceback": None}
        _update(project, task_id, state="cancelled", finished_at=_now(), error=err)
    return status(project, task_id)


def wait(
    project: Project, task_id: str, timeout: float | None = None, poll: float = 0.1
) -> TaskStatus:
    """Poll until the task is terminal; TimeoutError (with the last status) after ``timeout`` s."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = status(project, task_id)
        if st.done:
            return st
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"task {task_id} still {st.state} after {timeout} s: {st.progress}")
        time.sleep(poll)


def list_tasks(project: Project, kind: str | None = None) -> list[TaskStatus]:
    """Every task of the project (optionally one kind), oldest first."""
    out = []
    for path in project.tasks_dir.glob("*.json"):
        try:
            st = status(project, path.stem)
        except (TaskError, json.JSONDecodeError):
            continue
        if kind is None or st.kind == kind:
            out.append(st)
    return sorted(out, key=lambda s: s.created_at)
