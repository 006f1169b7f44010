"""The events benchmark runs end to end at a tiny size and reports sane figures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_bench_events_runs_small(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(REPO))  # spawned workers inherit sys.path
    from benchmarks import bench_events

    results = bench_events.main(
        ["--events", "8", "--naive-events", "4", "--query-events", "50", "--repeat", "1"]
    )
    assert set(results) >= {"naive_p50_ms", "sqlite_wal_1w_p50_ms", "sqlite_wal_4w_p50_ms",
                            "append_1w_p50_ms", "append_4w_p50_ms",
                            "query_pending_ms", "query_ingested_ms", "fsync_floor_p50_ms"}
    assert all(value > 0 for value in results.values())
    out = capsys.readouterr().out
    assert "faster than naive" in out and "SQLite WAL" in out
    assert "pending/ingested" in out and "peak RSS" in out
