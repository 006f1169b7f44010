"""Background tasks: thread and process runners, cancel, death detection, cross-process status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from brewslm_core import tasks

REPO = Path(__file__).resolve().parents[1]

WORK_SOURCE = textwrap.dedent(
    '''
    import os
    import time

    from brewslm_core.tasks import TaskFailed


    def count(ctx, *, steps, delay=0.0):
        for i in range(steps):
            ctx.check_cancelled()
            time.sleep(delay)
            ctx.progress(i + 1, steps, f"step {i + 1}")
        return {"steps": steps, "pid": os.getpid()}


    def write_marker(marker, text):
        # Written whole then renamed, so a reader never sees the file empty.
        with open(marker + ".tmp", "w") as f:
            f.write(text)
        os.replace(marker + ".tmp", marker)


    def forever(ctx, *, marker=None):
        # Never checks for cancel: only kill() or death stops it.
        if marker:
            write_marker(marker, str(os.getpid()))
        while True:
            time.sleep(0.05)


    def forever_with_child(ctx, *, marker):
        import subprocess
        import sys

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        write_marker(marker, f"{os.getpid()} {child.pid}")
        while True:
            time.sleep(0.05)


    def boom(ctx):
        raise ValueError("bad input row 3")


    def oom(ctx):
        raise TaskFailed("training_oom", "out of memory at step 2")
    '''
)


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A work module on disk that both this process and a worker process can import."""
    name = f"brewslm_task_work_{uuid.uuid4().hex[:8]}"
    mod_dir = tmp_path / "workmods"
    mod_dir.mkdir()
    (mod_dir / f"{name}.py").write_text(WORK_SOURCE)
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod_dir), str(REPO)]))
    return name


def test_thread_task_succeeds_with_progress_and_result(project, work):
    task_id = tasks.start(project, f"{work}:count", {"steps": 5}, kind="clean")
    st = tasks.wait(project, task_id, timeout=30)
    assert st.state == "succeeded"
    assert st.result == {"steps": 5, "pid": os.getpid()}
    assert st.progress == {"done": 5, "total": 5, "message": "step 5"}
    assert st.started_at and st.finished_at and st.finished_at >= st.started_at
    # The state file on disk is the same JSON another process would read.
    on_disk = json.loads((project.tasks_dir / f"{task_id}.json").read_text())
    assert on_disk["state"] == "succeeded"
    assert [t.task_id for t in tasks.list_tasks(project)] == [task_id]
    assert st.to_dict()["state"] == "succeeded"


def test_thread_task_cancel(project, work):
    task_id = tasks.start(project, f"{work}:count", {"steps": 10_000, "delay": 0.01}, kind="clean")
    deadline = time.monotonic() + 20
    while tasks.status(project, task_id).progress["done"] < 3:
        assert time.monotonic() < deadline, "task never made progress"
        time.sleep(0.05)
    tasks.cancel(project, task_id)
    st = tasks.wait(project, task_id, timeout=20)
    assert st.state == "cancelled"
    assert 3 <= st.progress["done"] < 10_000


def test_failures_carry_reason_codes(project, work):
    st = tasks.wait(project, tasks.start(project, f"{work}:boom", kind="eval"), timeout=20)
    assert st.state == "failed"
    assert st.error["reason_code"] == "eval_runtime_error"
    assert "ValueError: bad input row 3" in st.error["message"]
    assert "Traceback" in st.error["traceback"]
    st = tasks.wait(project, tasks.start(project, f"{work}:oom", kind="train"), timeout=20)
    assert (st.state, st.error["reason_code"]) == ("failed", "training_oom")


def test_bad_target_and_kwargs_are_refused_at_start(project, work):
    with pytest.raises(tasks.TaskError, match="module:function"):
        tasks.start(project, "no_colon_here", kind="clean")
    with pytest.raises(tasks.TaskError, match="has no callable 'nope'"):
        tasks.start(project, f"{work}:nope", kind="clean")
    with pytest.raises(tasks.TaskError, match="JSON"):
        tasks.start(project, f"{work}:count", {"steps": object()}, kind="clean")
    with pytest.raises(tasks.TaskError, match="no task 'missing'"):
        tasks.status(project, "missing")
    assert tasks.list_tasks(project) == []


def test_process_task_runs_in_another_process(project, work):
    task_id = tasks.start(project, f"{work}:count", {"steps": 3}, kind="train", runner="process")
    st = tasks.wait(project, task_id, timeout=60)
    assert st.state == "succeeded", st.error
    assert st.result["pid"] != os.getpid()
    assert st.pid == st.result["pid"]


def test_process_task_cancel_from_another_process(project, work):
    task_id = tasks.start(
        project, f"{work}:count", {"steps": 100_000, "delay": 0.01}, kind="train", runner="process"
    )
    deadline = time.monotonic() + 60
    while tasks.status(project, task_id).progress["done"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Cancel from a separate Python process, as a CLI or dashboard would.
    code = (
        "import sys, json; from brewslm_core import Project, tasks; "
        "p = Project.open(sys.argv[1]); print(json.dumps(tasks.cancel(p, sys.argv[2]).to_dict()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(project.root), task_id],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert json.loads(out.stdout)["task_id"] == task_id
    st = tasks.wait(project, task_id, timeout=30)
    assert st.state == "cancelled"
    assert st.error["reason_code"] == "training_cancelled"


def test_sigkilled_process_task_is_reported_failed(project, work, tmp_path):
    marker = tmp_path / "started.pid"
    task_id = tasks.start(
        project, f"{work}:forever", {"marker": str(marker)}, kind="train", runner="process"
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "worker never started"
        time.sleep(0.05)
    assert tasks.status(project, task_id).state == "running"
    os.kill(int(marker.read_text()), signal.SIGKILL)
    st = tasks.wait(project, task_id, timeout=30)
    assert st.state == "failed"
    assert "worker process died" in st.error["message"]
    assert st.error["reason_code"] == "training_runtime_error"


def test_orphaned_task_seen_dead_and_status_readable_from_another_process(project, work, tmp_path):
    """The starter process exits; the worker is SIGKILLed; a third process reads ``failed``."""
    marker = tmp_path / "started.pid"
    starter = (
        "import sys; from brewslm_core import Project, tasks; p = Project.open(sys.argv[1]); "
        "print(tasks.start(p, sys.argv[2] + ':forever', {'marker': sys.argv[3]}, kind='export', "
        "runner='process'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", starter, str(project.root), work, str(marker)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    task_id = out.stdout.strip()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "worker never started"
        time.sleep(0.05)
    reader = (
        "import sys, json; from brewslm_core import Project, tasks; p = Project.open(sys.argv[1]); "
        "print(json.dumps(tasks.status(p, sys.argv[2]).to_dict()))"
    )

    def read_status() -> dict:
        res = subprocess.run(
            [sys.executable, "-c", reader, str(project.root), task_id],
            capture_output=True, text=True, timeout=60, check=True,
        )
        return json.loads(res.stdout)

    assert read_status()["state"] == "running"
    os.kill(int(marker.read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (st := read_status())["state"] == "running":
        assert time.monotonic() < deadline, "dead worker still reported running"
        time.sleep(0.2)
    assert st["state"] == "failed"
    assert st["error"]["reason_code"] == "export_run_failed"
    assert "worker process died" in st["error"]["message"]


def test_kill_stops_a_process_task_and_its_children(project, work, tmp_path):
    marker = tmp_path / "started.pid"
    task_id = tasks.start(
        project, f"{work}:forever_with_child", {"marker": str(marker)}, kind="train",
        runner="process",
    )
    deadline = time.monotonic() + 60
    while not marker.exists() or len(marker.read_text().split()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    st = tasks.kill(project, task_id)
    assert st.state == "cancelled" and st.error["reason_code"] == "training_cancelled"
    pids = [int(p) for p in marker.read_text().split()]
    deadline = time.monotonic() + 10
    while any(tasks._pid_alive(p) for p in pids):
        assert time.monotonic() < deadline, "killed worker or its child still alive"
        time.sleep(0.05)
    with pytest.raises(tasks.TaskError, match="use cancel"):
        tasks.kill(project, tasks.start(project, f"{work}:count", {"steps": 1}, kind="clean"))


def test_stale_heartbeat_is_failed(project, work, monkeypatch):
    task_id = tasks.start(project, f"{work}:count", {"steps": 1}, kind="clean")
    tasks.wait(project, task_id, timeout=20)
    # A record left "running" by a vanished host: only the heartbeat can tell.
    path = project.tasks_dir / f"{task_id}.json"
    data = json.loads(path.read_text())
    data.update(state="running", host="elsewhere", heartbeat=time.time() - tasks.STALE_S - 5)
    path.write_text(json.dumps(data))
    st = tasks.status(project, task_id)
    assert st.state == "failed" and "no heartbeat" in st.error["message"]
