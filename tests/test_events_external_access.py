"""The event store's SQL never reaches the file system: DuckDB's external access is switched off
and locked for every query (SQL can come from a shared Voila dashboard or a REST request)."""

from __future__ import annotations

import pytest

from brewslm_core.events import EventQueryError


@pytest.fixture()
def store(project):
    project.events.append(stage="system", severity="info", summary="hello", payload={"k": "v"})
    project.events.append(stage="training", severity="error", reason_code="training_oom",
                          run_id="exp-1", payload={"step": 3})
    return project.events


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_json_auto('/etc/os-release')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT count(*) FROM run_events UNION ALL SELECT count(*) FROM read_csv('/etc/passwd')",
])
def test_file_reads_are_refused(store, sql: str) -> None:
    with pytest.raises(EventQueryError, match="file system operations are disabled"):
        store.query(sql)


@pytest.mark.parametrize("sql", [
    "SET enable_external_access = true",
    "PRAGMA enable_external_access = true",
    "RESET lock_configuration",
    "ATTACH 'other.duckdb' AS other",
    "COPY run_events TO 'leak.csv'",
    "INSTALL httpfs",
])
def test_unlocking_or_leaving_the_store_is_refused(store, sql: str) -> None:
    with pytest.raises(EventQueryError):
        store.query(sql)


def test_ordinary_selects_still_work(store) -> None:
    frame = store.query("SELECT stage, payload->>'step' AS step FROM run_events "
                        "WHERE reason_code = ? ORDER BY id", ["training_oom"])
    assert frame.to_dict(orient="records") == [{"stage": "training", "step": "3"}]
    assert store.query("SELECT count(*) AS n FROM run_events")["n"][0] == 2
    assert list(store.list(text="hello")["summary"]) == ["hello"]
    # the lock is per query connection: appends and later queries are unaffected
    store.append(stage="system", severity="info", summary="later")
    assert store.query("SELECT count(*) AS n FROM run_events")["n"][0] == 3
