"""Several real processes against one store: concurrent writers and queriers, kill -9, foreign locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brewslm_core.events import EventStore

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 240  # generous: the machine is shared; tests never assert on speed

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from brewslm_core.events import EventStore

    events_dir, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    gate = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    store = EventStore(Path(events_dir), project_id=9)
    ids = []
    for seq in range(count):
        if gate is not None and seq == count // 2:
            # Halfway, wait until the querier has seen a partial count: the overlap of
            # queries and writes is then guaranteed, not left to the scheduler.
            deadline = time.monotonic() + 120
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        event = store.append(stage="system", severity="info", summary=f"{name} #{seq}",
                             run_id=name, payload={"writer": name, "seq": seq})
        ids.append(event.id)
        time.sleep(pause)  # spread the writes so the querier ingests while they happen
    print(json.dumps(ids))
    """
)

QUERIER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from brewslm_core.events import EventStore

    events_dir, stop_file = Path(sys.argv[1]), Path(sys.argv[2])
    gate = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    store = EventStore(events_dir, project_id=9)
    counts = []
    while True:
        stopping = stop_file.exists()
        n = int(store.query("SELECT count(*) AS n FROM run_events")["n"].iloc[0])
        if gate is not None and 0 < n < 1000:
            gate.touch()  # seen mid-write: let the writers finish
        recent = store.list(limit=20)
        assert recent["id"].is_unique
        if not counts:
            print("ready", flush=True)  # the parent starts the writers only now
        counts.append(n)
        if stopping:
            break
    print(json.dumps(counts))
    """
)

TIGHT_LOOP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from brewslm_core.events import EventStore

    store = EventStore(Path(sys.argv[1]), project_id=9)
    i = 0
    while True:
        # a payload big enough that a kill can land inside a write
        store.append(stage="training", severity="info", payload={"i": i, "pad": "x" * 20000})
        i += 1
    """
)

QUERY_LOOP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from brewslm_core.events import EventStore

    store = EventStore(Path(sys.argv[1]), project_id=9)
    while True:
        store.query("SELECT count(*) FROM run_events")
    """
)

HOLD_DUCKDB = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _spawn(code: str, *args: str | Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{err}"
    assert "Error" not in err and "Traceback" not in err, err
    return out


def _wait_for_lines(path: Path, at_least: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {at_least} lines")


def test_query_sees_events_appended_by_another_process(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events", project_id=9)
    store.append(stage="system", severity="info", summary="mine")
    ids = json.loads(_finish(_spawn(WRITER, store.events_dir, "other", 3)))
    assert ids == [2, 3, 4]
    frame = store.list(limit=None)
    assert frame["id"].tolist() == [4, 3, 2, 1]
    assert frame["run_id"].tolist()[:3] == ["other"] * 3
    assert frame["payload"].iloc[0] == {"writer": "other", "seq": 2}


def test_four_writers_and_a_querier_lose_nothing(tmp_path: Path) -> None:
    events_dir = tmp_path / "events"
    stop = tmp_path / "stop"
    gate = tmp_path / "seen-mid-write"
    querier = _spawn(QUERIER, events_dir, stop, gate)
    assert querier.stdout is not None and querier.stdout.readline().strip() == "ready"
    writers = {f"w{n}": _spawn(WRITER, events_dir, f"w{n}", 250, 0.01, gate) for n in range(4)}
    returned = {name: json.loads(_finish(proc)) for name, proc in writers.items()}
    stop.touch()
    counts = json.loads(_finish(querier))

    store = EventStore(events_dir, project_id=9)
    frame = store.query(
        "SELECT id, run_id, (payload->>'seq')::INT AS seq FROM run_events ORDER BY id"
    )
    assert len(frame) == 1000
    assert frame["id"].is_unique
    assert frame["id"].tolist() == list(range(1, 1001))  # no gaps: nothing was lost
    for name, ids in returned.items():
        mine = frame[frame["run_id"] == name]
        assert mine["seq"].tolist() == list(range(250))
        assert mine["id"].tolist() == ids  # what append() returned is what was stored
        assert ids == sorted(ids)  # increasing in each writer's own order
    # the querier's view only ever grew, and its last look (after the writers) saw everything
    assert counts == sorted(counts)
    assert counts[-1] == 1000
    assert any(0 < n < 1000 for n in counts), f"the querier never ran during the writes: {counts}"


def test_kill_9_during_appends_and_queries_keeps_the_store_readable(tmp_path: Path) -> None:
    events_dir = tmp_path / "events"
    store = EventStore(events_dir, project_id=9)
    log = events_dir / "events.jsonl"
    seen = 0
    for _round in range(3):
        writer = _spawn(TIGHT_LOOP, events_dir)
        querier = _spawn(QUERY_LOOP, events_dir)
        _wait_for_lines(log, seen + 20)
        time.sleep(0.05)
        for proc in (writer, querier):
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=WAIT_S)
            assert proc.returncode == -signal.SIGKILL
        frame = store.query("SELECT id FROM run_events ORDER BY id")
        ids = frame["id"].tolist()
        assert len(ids) == len(set(ids)) and len(ids) >= seen + 20
        assert ids == list(range(1, len(ids) + 1))
        after = store.append(stage="system", severity="info", summary="still writable")
        assert after.id == ids[-1] + 1
        seen = after.id
    # every complete line in the log is an event, and the log ends on a line boundary
    data = log.read_bytes()
    assert data.endswith(b"\n")
    lines = [json.loads(line) for line in data.splitlines()]
    assert [line["id"] for line in lines] == list(range(1, seen + 1))


def test_a_foreign_duckdb_connection_makes_queries_wait_not_fail(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events", project_id=9)
    store.append(stage="system", severity="info")
    store.refresh()  # the index file exists now
    holder = _spawn(HOLD_DUCKDB, store.events_dir / "events.duckdb", 1.5)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    store.append(stage="system", severity="info")  # appends never touch DuckDB
    assert store.list()["id"].tolist() == [2, 1]  # waits for the foreign connection to close
    _finish(holder)


@pytest.mark.parametrize("threads", [4])
def test_threads_in_one_process_get_unique_increasing_ids(tmp_path: Path, threads: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = EventStore(tmp_path / "events", project_id=9)

    def work(name: str) -> list[int]:
        return [store.append(stage="system", severity="info", run_id=name).id for _ in range(50)]

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, [f"t{i}" for i in range(threads)]))
    all_ids = [i for ids in results for i in ids]
    assert sorted(all_ids) == list(range(1, 50 * threads + 1))
    assert all(ids == sorted(ids) for ids in results)
    assert len(store.list(limit=None)) == 50 * threads
