"""EventStore in one process: validation, payloads, times, filters, SQL, recovery of the index."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from brewslm_core.contracts import RunEvent
from brewslm_core.events import COLUMNS, EventQueryError, EventStore


@pytest.fixture()
def store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "events", project_id=42)


def _nested(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth):
        node["x"] = {}
        node = node["x"]
    return root


def _log_lines(store: EventStore) -> list[dict]:
    if not store.log_path.exists():
        return []
    return [json.loads(line) for line in store.log_path.read_bytes().splitlines()]


# ---- validation at the boundary ------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stage": "trainig", "severity": "info"}, "unknown stage 'trainig'"),
        ({"stage": "training", "severity": "fatal"}, "unknown severity 'fatal'"),
        ({"stage": "training", "severity": "error"}, "needs a reason_code"),
        ({"stage": "export", "severity": "critical"}, "needs a reason_code"),
        ({"stage": "system", "severity": "info", "actor": ""}, "actor must be"),
        ({"stage": "system", "severity": "info", "run_id": ""}, "run_id must be"),
        ({"stage": "system", "severity": "info", "summary": 5}, "summary must be"),
        ({"stage": "system", "severity": "info", "ts": "2024-01-01"}, "ts must be a datetime"),
        ({"stage": "system", "severity": "info", "payload": [1, 2]}, "payload must be a dict"),
        ({"stage": "system", "severity": "info", "payload": {"s": {1, 2}}}, "not JSON-serialis"),
        ({"stage": "system", "severity": "info", "payload": {"x": float("nan")}}, "not JSON-serialis"),
        ({"stage": "system", "severity": "info", "summary": "bad \ud800"}, "not valid Unicode"),
        ({"stage": "system", "severity": "info", "payload": {"k": "\udc00"}}, "not valid Unicode"),
        ({"stage": "system", "severity": "info", "payload": _nested(5000)}, "not JSON-serialis"),
    ],
)
def test_refused_events_raise_and_write_nothing(store: EventStore, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.append(**fields)
    assert _log_lines(store) == []
    assert len(store.list()) == 0


def test_unknown_reason_code_message_is_exact(store: EventStore) -> None:
    with pytest.raises(ValueError) as info:
        store.append(stage="training", severity="error", reason_code="training_exploded")
    assert str(info.value) == "invalid_reason_code:training_exploded"
    with pytest.raises(ValueError) as info:
        store.append(stage="system", severity="info", reason_code="nope")
    assert str(info.value) == "invalid_reason_code:nope"


def test_error_with_reason_code_is_accepted(store: EventStore) -> None:
    event = store.append(stage="training", severity="error", reason_code="training_oom",
                         summary="out of memory at step 12", run_id="exp-3")
    assert isinstance(event, RunEvent)
    assert (event.id, event.project_id, event.reason_code, event.actor) == (
        1, 42, "training_oom", "system")


def test_store_has_no_update_or_delete_api(store: EventStore) -> None:
    public = {name for name in dir(store) if not name.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "edit"))}


# ---- payloads and ids ----------------------------------------------------------------------
def test_payload_round_trips_through_log_list_get_and_sql(store: EventStore) -> None:
    payload = {
        "source": "jsonl:data/train.jsonl",
        "accepted": 1200,
        "ratio": 0.125,
        "ok": True,
        "missing": None,
        "nested": {"by_reason": {"missing_field": 3}, "examples": [1, "two", [3.5]]},
        "unicode": "café ✓ 日本",
        "quote": 'he said "hi"\nnext line',
    }
    event = store.append(stage="ingestion", severity="info", reason_code="dataset_import_run",
                         payload=payload, summary="import")
    assert event.payload == payload
    assert _log_lines(store)[0]["payload"] == payload
    listed = store.list()
    assert listed.loc[0, "payload"] == payload
    assert store.get(event.id) == event
    frame = store.query(
        "SELECT payload->>'unicode' AS u, (payload->'nested'->'by_reason'->>'missing_field')::INT AS m"
        " FROM run_events"
    )
    assert frame.to_dict(orient="records") == [{"u": "café ✓ 日本", "m": 3}]


def test_payload_defaults_to_empty_object_and_tuples_become_lists(store: EventStore) -> None:
    first = store.append(stage="system", severity="info")
    second = store.append(stage="system", severity="info", payload={"pair": (1, 2), 3: "x"})
    assert first.payload == {}
    assert second.payload == {"pair": [1, 2], "3": "x"}  # exactly what JSON stores
    assert store.get(second.id).payload == second.payload


def test_ids_are_unique_and_increase_in_insert_order(store: EventStore) -> None:
    ids = [store.append(stage="system", severity="info", payload={"i": i}).id for i in range(30)]
    assert ids == list(range(1, 31))
    frame = store.query("SELECT id, payload->>'i' AS i FROM run_events ORDER BY id")
    assert frame["id"].tolist() == ids
    assert frame["i"].astype(int).tolist() == list(range(30))


# ---- times ---------------------------------------------------------------------------------
def test_ts_defaults_to_now_and_created_at_is_insert_time(store: EventStore) -> None:
    before = datetime.now(UTC)
    event = store.append(stage="system", severity="info")
    after = datetime.now(UTC)
    assert before <= event.ts <= after
    assert event.created_at == event.ts
    row = store.list().iloc[0]
    assert row["ts"].to_pydatetime() == event.ts
    assert row["created_at"].to_pydatetime() == event.created_at


def test_back_dated_ts_keeps_its_value(store: EventStore) -> None:
    when = datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    before = datetime.now(UTC)
    event = store.append(stage="deployment", severity="warning", ts=when, summary="replayed")
    assert event.ts == when
    assert event.created_at >= before
    got = store.get(event.id)
    assert got.ts == when
    assert got.created_at == event.created_at
    assert store.query("SELECT ts < created_at AS back FROM run_events")["back"].tolist() == [True]


def test_naive_ts_is_utc_and_other_zones_keep_the_instant(store: EventStore) -> None:
    naive = store.append(stage="system", severity="info", ts=datetime(2022, 1, 1, 12, 0))
    assert naive.ts == datetime(2022, 1, 1, 12, 0, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    zoned = store.append(stage="system", severity="info", ts=datetime(2022, 1, 1, 14, 0, tzinfo=plus2))
    assert zoned.ts == naive.ts
    assert store.get(zoned.id).ts == datetime(2022, 1, 1, 12, 0, tzinfo=UTC)


# ---- list() filters ------------------------------------------------------------------------
@pytest.fixture()
def filled(store: EventStore) -> EventStore:
    store.append(stage="ingestion", severity="info", reason_code="dataset_import_run",
                 summary="imported 120 rows", run_id="import-1", payload={"accepted": 120})
    store.append(stage="cleaning", severity="warning", summary="many near duplicates",
                 payload={"near_dupes": 14})
    store.append(stage="training", severity="info", summary="started", run_id="exp-1",
                 parent_run_id="autopilot-ab")
    store.append(stage="training", severity="error", reason_code="training_oom",
                 summary="Out Of Memory at step 12", run_id="exp-1", parent_run_id="autopilot-ab")
    store.append(stage="autopilot", severity="critical", reason_code="autopilot_no_safe_plan",
                 run_id="autopilot-ab", actor="user-7", summary="no plan: 100% of options unsafe")
    return store


def test_list_is_newest_first_with_all_seed_columns(filled: EventStore) -> None:
    frame = filled.list()
    assert tuple(frame.columns) == COLUMNS
    assert frame["id"].tolist() == [5, 4, 3, 2, 1]
    assert filled.list(limit=2)["id"].tolist() == [5, 4]
    assert len(filled.list(limit=None)) == 5


def test_list_filters(filled: EventStore) -> None:
    assert filled.list(stage="training")["id"].tolist() == [4, 3]
    assert filled.list(stage=["ingestion", "cleaning"])["id"].tolist() == [2, 1]
    assert filled.list(severity="error")["reason_code"].tolist() == ["training_oom"]
    assert filled.list(severity=["error", "critical"])["id"].tolist() == [5, 4]
    # a run id matches the run itself and the runs nested under it
    assert filled.list(run_id="exp-1")["id"].tolist() == [4, 3]
    assert filled.list(run_id="autopilot-ab")["id"].tolist() == [5, 4, 3]
    assert filled.list(stage="training", severity="error", run_id="exp-1")["id"].tolist() == [4]
    assert filled.list(run_id="nope").empty


def test_list_text_search_is_case_insensitive_and_literal(filled: EventStore) -> None:
    assert filled.list(text="out of memory")["id"].tolist() == [4]
    assert filled.list(text="near_dupes")["id"].tolist() == [2]  # payload keys are searched
    assert filled.list(text="user-7")["id"].tolist() == [5]  # and the actor
    assert filled.list(text="100%")["id"].tolist() == [5]  # % is a literal, not a wildcard
    assert filled.list(text="1_0").empty  # _ too


def test_list_rejects_unknown_filter_values_with_a_hint(filled: EventStore) -> None:
    with pytest.raises(ValueError, match="did you mean 'training'"):
        filled.list(stage="trainig")
    with pytest.raises(ValueError, match="unknown severity"):
        filled.list(severity="fatal")
    with pytest.raises(ValueError, match="limit"):
        filled.list(limit=0)


# ---- query() -------------------------------------------------------------------------------
def test_query_runs_sql_with_params(filled: EventStore) -> None:
    frame = filled.query(
        "SELECT stage, count(*) AS n FROM run_events WHERE severity <> ? GROUP BY stage ORDER BY stage",
        ["critical"],
    )
    assert frame.to_dict(orient="records") == [
        {"stage": "cleaning", "n": 1}, {"stage": "ingestion", "n": 1}, {"stage": "training", "n": 2}
    ]
    assert filled.query("SELECT count(*) AS n FROM run_events WHERE actor = $a", {"a": "user-7"})[
        "n"
    ].tolist() == [1]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM run_events",
        "UPDATE run_events SET severity = 'info'",
        "INSERT INTO run_events SELECT * FROM run_events",
        "DROP TABLE run_events",
        "SELECT 1; DELETE FROM run_events",
    ],
)
def test_query_refuses_statements_that_change_data(filled: EventStore, sql: str) -> None:
    with pytest.raises(EventQueryError, match="append-only"):
        filled.query(sql)
    assert len(filled.list(limit=None)) == 5


@pytest.mark.parametrize(
    "sql",
    [
        "WITH gone AS (DELETE FROM run_events RETURNING id) SELECT count(*) AS n FROM gone",
        "EXPLAIN ANALYZE DELETE FROM run_events",
    ],
)
def test_writes_hidden_inside_a_read_never_stick(filled: EventStore, sql: str) -> None:
    filled.query(sql)  # DuckDB runs these; the store rolls them back
    assert filled.list(limit=None)["id"].tolist() == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("sql", ["SELEC * FROM run_events", "SELECT nope FROM run_events", ""])
def test_bad_sql_gives_a_clear_error(filled: EventStore, sql: str) -> None:
    with pytest.raises(EventQueryError) as info:
        filled.query(sql)
    if sql:
        assert "SQL error" in str(info.value) and "run_events" in str(info.value)


def test_get_unknown_id_is_a_key_error(filled: EventStore) -> None:
    with pytest.raises(KeyError, match="no event with id 99"):
        filled.get(99)


# ---- the log is the truth; the index is rebuilt from it -------------------------------------
def test_ingest_is_idempotent(filled: EventStore) -> None:
    filled.refresh()
    filled.refresh()
    assert filled.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM run_events").iloc[
        0
    ].tolist() == [5, 5]
    filled.append(stage="system", severity="info")
    assert filled.query("SELECT max(id) AS m, count(*) AS n FROM run_events").iloc[0].tolist() == [6, 6]


def test_deleted_index_is_rebuilt_from_the_log(filled: EventStore) -> None:
    before = filled.list(limit=None)
    (filled.events_dir / "events.duckdb").unlink()
    after = filled.list(limit=None)
    assert after.to_dict(orient="records") == before.to_dict(orient="records")


def test_corrupt_index_is_set_aside_and_rebuilt(filled: EventStore) -> None:
    filled.refresh()
    db = filled.events_dir / "events.duckdb"
    db.write_bytes(b"this is not a database" * 512)
    with pytest.warns(UserWarning, match="rebuilding it from the log"):
        frame = filled.list(limit=None)
    assert frame["id"].tolist() == [5, 4, 3, 2, 1]
    assert list(filled.events_dir.glob("events.duckdb.broken-*"))


def test_torn_last_line_is_skipped_by_readers_and_cut_by_the_next_writer(store: EventStore) -> None:
    for i in range(3):
        store.append(stage="system", severity="info", payload={"i": i})
    complete = store.log_path.read_bytes()
    with open(store.log_path, "ab") as fh:  # what a writer killed mid-write leaves behind
        fh.write(b'{"id":4,"ts":"2024-01-01T00:00:00+00:00","created_at":"20')
    assert store.list()["id"].tolist() == [3, 2, 1]
    event = store.append(stage="system", severity="info", summary="after the crash")
    assert event.id == 4
    data = store.log_path.read_bytes()
    assert data.startswith(complete) and data.endswith(b"\n")
    assert [line["id"] for line in _log_lines(store)] == [1, 2, 3, 4]
    assert store.list()["id"].tolist() == [4, 3, 2, 1]


def test_a_garbled_complete_line_is_skipped_with_a_warning(store: EventStore) -> None:
    store.append(stage="system", severity="info")
    with open(store.log_path, "ab") as fh:
        fh.write(b"\x00\x00\x00 not json\n")
    store.append(stage="system", severity="info")  # the writer reads past the garbage for its id
    with pytest.warns(UserWarning, match="skipping unreadable event log line"):
        assert store.list()["id"].tolist() == [2, 1]


def test_strings_that_round_trip_through_json_and_duckdb(store: EventStore) -> None:
    odd = ["nul\x00byte", "emoji 🎉", "rtl \u202e x", "line\u2028sep", "tab\tnl\n", "x" * 100_000,
           "back\\slash \"quoted\"", "\\ud800 as text", "%_ like chars"]
    for text in odd:
        store.append(stage="system", severity="info", summary=text, run_id=text[:40],
                     payload={text: [text, {"k": text}]})
    frame = store.list(limit=None).iloc[::-1]
    assert frame["summary"].tolist() == odd
    assert frame["payload"].tolist() == [{t: [t, {"k": t}]} for t in odd]
    assert store.list(text="%_ like")["summary"].tolist() == ["%_ like chars"]


def test_a_line_duckdb_could_not_store_is_skipped_not_fatal(store: EventStore) -> None:
    store.append(stage="system", severity="info", summary="before")
    bad = {"id": 2, "ts": "2024-01-01T00:00:00+00:00", "created_at": "2024-01-01T00:00:00+00:00",
           "project_id": 42, "run_id": None, "parent_run_id": None, "stage": "system",
           "severity": "info", "reason_code": None, "actor": "system", "summary": "x",
           "payload": {"k": "\ud800"}}
    with open(store.log_path, "a", encoding="utf-8") as fh:  # a lone surrogate, escaped
        fh.write(json.dumps(bad) + "\n")
    store.append(stage="system", severity="info", summary="after")
    with pytest.warns(UserWarning, match="surrogates"):
        assert store.list()["summary"].tolist() == ["after", "before"]


def test_replaced_log_wins_over_a_stale_index(tmp_path: Path) -> None:
    first = EventStore(tmp_path / "a", project_id=1)
    for i in range(4):
        first.append(stage="system", severity="info", summary=f"a{i}")
    first.refresh()
    other = EventStore(tmp_path / "b", project_id=1)
    for i in range(2):
        other.append(stage="eval", severity="info", summary=f"b{i}")
    other.log_path.replace(first.log_path)  # someone restores an older/other log file
    assert first.list()["summary"].tolist() == ["b1", "b0"]


def test_a_conflicting_connection_in_this_process_gives_a_clear_error(filled: EventStore) -> None:
    import duckdb

    filled.refresh()
    db = filled.events_dir / "events.duckdb"
    held = duckdb.connect(str(db), read_only=True)  # someone's hand-made connection
    try:
        with pytest.raises(EventQueryError, match="close other connections"):
            filled.list()
        assert db.exists() and not list(filled.events_dir.glob("*.broken-*"))  # index untouched
        filled.append(stage="system", severity="info")  # appends are unaffected
    finally:
        held.close()
    assert filled.list()["id"].tolist()[:2] == [6, 5]
