"""RunEvent store: append latency (1 and 4 writer processes) and query latency, vs naive DuckDB.

Baselines measured in the same run: the naive way to record an event — duckdb.connect +
INSERT + close per event, one writer (it also cannot take a second writer process at all) —
and the well-kept one: SQLite in WAL mode, one connection per writer process kept open,
synchronous=FULL (each commit durable, as our fsynced append is), 1 and 4 writer processes.
Query latency is measured with N events still pending in the log vs already in the index.

    python -m benchmarks.bench_events [--events 400] [--naive-events 150] [--query-events 10000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from .common import children_peak_rss_mb, peak_rss_mb

PAYLOAD = {"source": "jsonl:data/train.jsonl", "accepted": 1200, "rejected": 3,
           "by_reason": {"missing_field": 2, "empty_text": 1}, "config_id": "cfg-7f3a"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _append_latencies(events_dir: str, count: int, name: str) -> list[float]:
    """Append ``count`` events, returning each append's latency in ms (runs in a subprocess)."""
    from brewslm_core.events import EventStore

    store = EventStore(Path(events_dir), project_id=1)
    out = []
    for i in range(count):
        start = time.perf_counter()
        store.append(stage="ingestion", severity="info", reason_code="dataset_import_run",
                     summary=f"{name} import {i}", run_id=name, payload=PAYLOAD)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _naive_latencies(db_path: str, count: int) -> list[float]:
    import duckdb

    con = duckdb.connect(db_path)
    con.execute(
        "CREATE TABLE run_events (id BIGINT PRIMARY KEY, project_id BIGINT, run_id VARCHAR,"
        " parent_run_id VARCHAR, stage VARCHAR, severity VARCHAR, reason_code VARCHAR,"
        " actor VARCHAR, summary VARCHAR, payload JSON, ts TIMESTAMPTZ, created_at TIMESTAMPTZ)"
    )
    con.close()
    out = []
    for i in range(count):
        start = time.perf_counter()
        con = duckdb.connect(db_path)
        now = datetime.now(UTC)
        con.execute(
            "INSERT INTO run_events VALUES ((SELECT coalesce(max(id), 0) + 1 FROM run_events),"
            " 1, 'naive', NULL, 'ingestion', 'info', 'dataset_import_run', 'system', ?, ?, ?, ?)",
            [f"import {i}", json.dumps(PAYLOAD), now, now],
        )
        con.close()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _sqlite_latencies(db_path: str, count: int, name: str) -> list[float]:
    """SQLite WAL baseline: INSERT + COMMIT per event on a kept-open connection (a subprocess)."""
    import sqlite3

    con = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS run_events (id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER,"
        " run_id TEXT, parent_run_id TEXT, stage TEXT, severity TEXT, reason_code TEXT, actor TEXT,"
        " summary TEXT, payload TEXT, ts TEXT, created_at TEXT)"
    )
    out = []
    for i in range(count):
        start = time.perf_counter()
        now = datetime.now(UTC).isoformat()
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "INSERT INTO run_events (project_id, run_id, parent_run_id, stage, severity, reason_code,"
            " actor, summary, payload, ts, created_at) VALUES (1, ?, NULL, 'ingestion', 'info',"
            " 'dataset_import_run', 'system', ?, ?, ?, ?)",
            [name, f"{name} import {i}", json.dumps(PAYLOAD), now, now],
        )
        con.execute("COMMIT")
        out.append((time.perf_counter() - start) * 1000)
    con.close()
    return out


def _fsync_floor(path: str, count: int) -> list[float]:
    """The disk's floor: write one event-sized line + fsync, nothing else."""
    import os

    line = json.dumps({"id": 1, "payload": PAYLOAD, "summary": "x" * 40}).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    out = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, line)
            os.fsync(fd)
            out.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
    return out


def _time_query(events_dir: Path) -> float:
    from brewslm_core.events import EventStore

    store = EventStore(events_dir, project_id=1)
    start = time.perf_counter()
    frame = store.query("SELECT stage, count(*) AS n FROM run_events GROUP BY stage")
    elapsed = (time.perf_counter() - start) * 1000
    assert int(frame["n"].sum()) > 0
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400, help="appends per writer")
    parser.add_argument("--naive-events", type=int, default=150, help="naive baseline appends")
    parser.add_argument("--query-events", type=int, default=10_000, help="events for query timing")
    parser.add_argument("--repeat", type=int, default=3, help="query timings per case")
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, like separate kernels
    with tempfile.TemporaryDirectory(prefix="bench_events_") as tmp:
        root = Path(tmp)
        with ctx.Pool(1) as pool:
            naive = pool.apply(_naive_latencies, (str(root / "naive.duckdb"), args.naive_events))
            one = pool.apply(_append_latencies, (str(root / "one"), args.events, "w0"))
            lite_one = pool.apply(_sqlite_latencies, (str(root / "lite1.sqlite"), args.events, "w0"))
        with ctx.Pool(4) as pool:
            parts = pool.starmap(
                _append_latencies, [(str(root / "four"), args.events, f"w{n}") for n in range(4)]
            )
            lite_parts = pool.starmap(
                _sqlite_latencies, [(str(root / "lite4.sqlite"), args.events, f"w{n}") for n in range(4)]
            )
        four = [ms for part in parts for ms in part]
        lite_four = [ms for part in lite_parts for ms in part]

        # Query: a log of N events never queried (all pending) vs the same already ingested.
        source = root / "source"
        _append_latencies(str(source), 1, "seed")
        _time_query(source)  # warm imports (duckdb, pandas) so only the query is timed
        line = (source / "events.jsonl").read_bytes()
        _, rest = line.split(b",", 1)
        (source / "events.duckdb").unlink()
        with open(source / "events.jsonl", "wb") as fh:
            for i in range(1, args.query_events + 1):
                fh.write(b'{"id":%d,' % i + rest)
        pending, ingested = [], []
        for rep in range(args.repeat):
            target = root / f"q{rep}"
            shutil.copytree(source, target)
            pending.append(_time_query(target))  # creates the index and ingests every line
            ingested.append(_time_query(target))  # nothing new: straight to the SQL
        floor = _fsync_floor(str(root / "floor.log"), args.naive_events)

    results: dict[str, float] = {
        "naive_p50_ms": _pct(naive, 0.5),
        "naive_p99_ms": _pct(naive, 0.99),
        "sqlite_wal_1w_p50_ms": _pct(lite_one, 0.5),
        "sqlite_wal_1w_p99_ms": _pct(lite_one, 0.99),
        "sqlite_wal_4w_p50_ms": _pct(lite_four, 0.5),
        "sqlite_wal_4w_p99_ms": _pct(lite_four, 0.99),
        "append_1w_p50_ms": _pct(one, 0.5),
        "append_1w_p99_ms": _pct(one, 0.99),
        "append_4w_p50_ms": _pct(four, 0.5),
        "append_4w_p99_ms": _pct(four, 0.99),
        "query_pending_ms": statistics.median(pending),
        "query_ingested_ms": statistics.median(ingested),
        "fsync_floor_p50_ms": _pct(floor, 0.5),
    }
    self_rss = peak_rss_mb()
    child_rss = children_peak_rss_mb()
    print(f"RunEvent store benchmark ({args.events} appends/writer, "
          f"{args.naive_events} naive, {args.query_events} events for queries)")
    print(f"  baseline naive duckdb connect+INSERT+close, 1 writer: p50 {results['naive_p50_ms']:.2f} ms"
          f"  p99 {results['naive_p99_ms']:.2f} ms")
    print(f"  baseline SQLite WAL (synchronous=FULL, kept-open connection): 1 writer p50 "
          f"{results['sqlite_wal_1w_p50_ms']:.3f} ms p99 {results['sqlite_wal_1w_p99_ms']:.3f} ms; "
          f"4 writers p50 {results['sqlite_wal_4w_p50_ms']:.3f} ms "
          f"p99 {results['sqlite_wal_4w_p99_ms']:.3f} ms")
    print(f"  append, 1 writer : p50 {results['append_1w_p50_ms']:.3f} ms  "
          f"p99 {results['append_1w_p99_ms']:.3f} ms  "
          f"-> {results['naive_p50_ms'] / results['append_1w_p50_ms']:.1f}x faster than naive, "
          f"{results['sqlite_wal_1w_p50_ms'] / results['append_1w_p50_ms']:.2f}x SQLite WAL's speed (p50)")
    print(f"  append, 4 writers: p50 {results['append_4w_p50_ms']:.3f} ms  "
          f"p99 {results['append_4w_p99_ms']:.3f} ms  "
          f"-> {results['naive_p50_ms'] / results['append_4w_p50_ms']:.1f}x faster than naive, "
          f"{results['sqlite_wal_4w_p50_ms'] / results['append_4w_p50_ms']:.2f}x SQLite WAL's speed (p50); "
          f"{results['append_4w_p50_ms'] / results['append_1w_p50_ms']:.2f}x the 1-writer p50")
    print(f"  floor (write + fsync only): p50 {results['fsync_floor_p50_ms']:.3f} ms "
          f"-> 1-writer append p50 is {results['append_1w_p50_ms'] / results['fsync_floor_p50_ms']:.2f}x"
          " the floor")
    print(f"  query, {args.query_events} events pending : {results['query_pending_ms']:.1f} ms")
    print(f"  query, all already ingested: {results['query_ingested_ms']:.1f} ms "
          f"-> pending/ingested {results['query_pending_ms'] / results['query_ingested_ms']:.2f}x")
    print(f"  peak RSS: this process {self_rss:.0f} MB, largest child {child_rss:.0f} MB")
    return results


if __name__ == "__main__":
    main()
