"""The DuckDB index over the event log: ``events/events.duckdb`` with table ``run_events``.

DuckDB lets one process at a time open the file read-write and locks out every other process,
readers included. So every query takes an exclusive ``flock`` on ``events/.duckdb.lock`` (queriers
across processes wait their turn instead of failing), opens a connection, ingests log lines it has
not seen yet (idempotent by id, in one transaction with the log offset), runs the SQL, and closes.
The file is only an index: if it is unreadable it is set aside and rebuilt from the log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .log import EventLog, parse_line

if TYPE_CHECKING:
    import duckdb
    import pandas

DB_NAME = "events.duckdb"
LOCK_NAME = ".duckdb.lock"
TABLE = "run_events"
STATE_TABLE = "_brewslm_ingest"
COLUMNS: tuple[str, ...] = (
    "id",
    "project_id",
    "run_id",
    "parent_run_id",
    "stage",
    "severity",
    "reason_code",
    "actor",
    "summary",
    "payload",
    "ts",
    "created_at",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGINT PRIMARY KEY,
    project_id BIGINT NOT NULL,
    run_id VARCHAR,
    parent_run_id VARCHAR,
    stage VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    reason_code VARCHAR,
    actor VARCHAR NOT NULL,
    summary VARCHAR,
    payload JSON NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS {STATE_TABLE} (log_offset BIGINT NOT NULL, log_head VARCHAR NOT NULL);
"""
# Statement kinds query() runs; anything else would change the index, which is append-only.
_READ_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA")
_FOREIGN_LOCK_WAIT_S = 30.0


class EventQueryError(ValueError):
    """The SQL given to query() failed or tried to change the store."""


def _is_lock_conflict(exc: BaseException) -> bool:
    return "lock" in str(exc).lower() and "could not set" in str(exc).lower()


def _head_fingerprint(first_line: bytes) -> str:
    return hashlib.sha256(first_line).hexdigest()[:16]


def _text(value: Any, name: str, *, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _time(value: Any, name: str) -> datetime:
    parsed = datetime.fromisoformat(_text(value, name, optional=False) or "")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def row_from_line(obj: dict[str, Any]) -> tuple[Any, ...]:
    """One log object as a run_events row; ValueError if a field is missing or mistyped."""
    ident = obj.get("id")
    project_id = obj.get("project_id")
    for name, value in (("id", ident), ("project_id", project_id)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise ValueError(f"{name} must be a non-negative 64-bit integer")
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    try:
        payload_json = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except RecursionError as exc:
        raise ValueError("payload nested too deeply") from exc
    row = (
        ident,
        project_id,
        _text(obj.get("run_id"), "run_id", optional=True),
        _text(obj.get("parent_run_id"), "parent_run_id", optional=True),
        _text(obj.get("stage"), "stage", optional=False),
        _text(obj.get("severity"), "severity", optional=False),
        _text(obj.get("reason_code"), "reason_code", optional=True),
        _text(obj.get("actor"), "actor", optional=False),
        _text(obj.get("summary"), "summary", optional=True),
        payload_json,
        _time(obj.get("ts"), "ts"),
        _time(obj.get("created_at"), "created_at"),
    )
    for value in row:
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate escape (\ud800) raises UnicodeEncodeError
    return row


def _skip_warning(at: int, exc: BaseException) -> None:
    warnings.warn(f"skipping unreadable event log line at byte {at}: {exc}", stacklevel=6)


class EventIndex:
    def __init__(self, events_dir: Path, log: EventLog) -> None:
        self.db_path = events_dir / DB_NAME
        self.lock_path = events_dir / LOCK_NAME
        self.log = log

    # ---- connection life cycle ---------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        # Our own queriers are serialised by the flock; a conflict here means some other program
        # holds the file open (e.g. a hand-made duckdb connection), so wait for it a while.
        deadline = time.monotonic() + _FOREIGN_LOCK_WAIT_S
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(str(self.db_path))
                break
            except duckdb.IOException as exc:
                if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        con.execute("SET TimeZone = 'UTC'")
        return con

    def _set_aside(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + ".wal")):
            if path.exists():
                os.replace(path, path.with_name(f"{path.name}.broken-{stamp}"))

    def _open_ingested(self) -> duckdb.DuckDBPyConnection:
        """A connection whose run_events holds every complete line of the log."""
        con, state = self._open_checked()
        try:
            self._ingest(con, state)
        except BaseException:
            con.close()
            raise
        return con

    def _open_checked(self) -> tuple[duckdb.DuckDBPyConnection, tuple[int, str, int] | None]:
        """Connect and read the index state; an unreadable index file is rebuilt from the log."""
        import duckdb

        try:
            return self._connect_and_read()
        except duckdb.Error as exc:
            damaged = isinstance(
                exc, (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException)
            )
            if _is_lock_conflict(exc) or not damaged:
                # e.g. a connection this process opened by hand with another configuration
                raise EventQueryError(
                    f"cannot open the event index {self.db_path}: {exc}; close other "
                    "connections to that file (the store opens it only for each query)"
                ) from exc
            # The index is derived data: set the unreadable file aside and rebuild from the log.
            warnings.warn(
                f"event index {self.db_path} was unreadable ({exc}); rebuilding it from the log",
                stacklevel=4,
            )
            self._set_aside()
            return self._connect_and_read()

    def _connect_and_read(self) -> tuple[duckdb.DuckDBPyConnection, tuple[int, str, int] | None]:
        con = self._connect()
        try:
            con.execute(_SCHEMA)
            rows = con.execute(f"SELECT log_offset, log_head FROM {STATE_TABLE}").fetchall()
            max_id = con.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchall()[0][0]
        except BaseException:
            con.close()
            raise
        return con, ((rows[0][0], rows[0][1], max_id) if rows else None)

    # ---- ingestion ---------------------------------------------------------------------
    def _ingest(
        self, con: duckdb.DuckDBPyConnection, state: tuple[int, str, int] | None
    ) -> int:
        """Copy log lines past the stored offset into run_events; returns rows added."""
        import duckdb

        offset, head, max_id = state if state else (0, "", 0)
        log_size = self.log.size()
        current_head = _head_fingerprint(self.log.first_line())
        # The log replaced or shortened behind our back: the log wins, so re-index it whole.
        reset = offset > log_size or (offset > 0 and head != current_head)
        if reset:
            offset, max_id = 0, 0
        elif offset == log_size and state is not None:
            return 0
        con.execute("BEGIN TRANSACTION")
        try:
            added = self._copy(con, offset, max_id, current_head, reset, careful=False)
            con.execute("COMMIT")
            return added
        except (duckdb.Error, ValueError):
            # One row DuckDB refuses must not block every query: redo row by row, skipping it.
            con.execute("ROLLBACK")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        # Autocommit per row; a crash part-way is fine because ingestion is idempotent by id.
        return self._copy(con, offset, max_id, current_head, reset, careful=True)

    def _copy(
        self,
        con: duckdb.DuckDBPyConnection,
        offset: int,
        max_id: int,
        head: str,
        reset: bool,
        *,
        careful: bool,
    ) -> int:
        if reset:
            con.execute(f"DELETE FROM {TABLE}").fetchall()
        added = 0
        for batch in self.log.read_from(offset):
            rows = []
            for at, line in batch.lines:
                if not line.strip():
                    continue
                try:
                    row = row_from_line(parse_line(line))
                except ValueError as exc:
                    _skip_warning(at, exc)
                    continue
                if row[0] <= max_id:
                    continue  # already indexed (or a stray duplicate): ids only grow
                max_id = row[0]
                rows.append((at, row))
            if careful:
                added += self._insert_each(con, rows)
            else:
                self._insert(con, [row for _, row in rows])
                added += len(rows)
            offset = batch.end
        con.execute(f"DELETE FROM {STATE_TABLE}").fetchall()
        con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?)", [offset, head]).fetchall()
        return added

    @classmethod
    def _insert_each(
        cls, con: duckdb.DuckDBPyConnection, rows: list[tuple[int, tuple[Any, ...]]]
    ) -> int:
        import duckdb

        added = 0
        for at, row in rows:
            try:
                cls._insert(con, [row])
                added += 1
            except (duckdb.Error, ValueError) as exc:
                _skip_warning(at, exc)
        return added

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
        for col in ("ts", "created_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        con.register("_pending_events", frame)
        try:
            cols = ", ".join(c if c != "payload" else "payload::JSON" for c in COLUMNS)
            con.execute(f"INSERT INTO {TABLE} SELECT {cols} FROM _pending_events").fetchall()
        finally:
            con.unregister("_pending_events")

    # ---- public entry points -----------------------------------------------------------
    def refresh(self) -> None:
        """Ingest pending lines now (queries do this anyway)."""
        with self._exclusive():
            self._open_ingested().close()

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> pandas.DataFrame:
        import duckdb
        import pandas as pd

        if not isinstance(sql, str) or not sql.strip():
            raise EventQueryError("query() needs an SQL string, e.g. 'SELECT * FROM run_events'")
        with self._exclusive():
            con = self._open_ingested()
            try:
                try:
                    statements = con.extract_statements(sql)
                except duckdb.Error as exc:
                    raise EventQueryError(_sql_hint(exc)) from exc
                if not statements:
                    raise EventQueryError("query() got no SQL statement")
                for statement in statements:
                    kind = statement.type.name
                    if kind not in _READ_STATEMENTS:
                        raise EventQueryError(
                            f"query() only reads ({', '.join(_READ_STATEMENTS)}); got {kind}. "
                            "The event store is append-only: record a correction with append()."
                        )
                # SQL can arrive from a dashboard viewer or a REST request: it must never reach
                # the file system (read_csv('/etc/passwd'), COPY, ATTACH, INSTALL). The index is
                # already open and ingested, so switch external access off and lock it.
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
                # A SELECT can still write (a DML CTE, EXPLAIN ANALYZE DELETE): run the user's
                # SQL in a transaction that is always rolled back.
                con.execute("BEGIN TRANSACTION")
                try:
                    for statement in statements[:-1]:
                        con.execute(statement).fetchall()
                    # Through Arrow: DuckDB's own .df() path warns under pandas 3.
                    relation = con.sql(statements[-1], params=params)
                    if relation is None:
                        return pd.DataFrame()
                    return relation.to_arrow_table().to_pandas()
                except duckdb.Error as exc:
                    raise EventQueryError(_sql_hint(exc)) from exc
                finally:
                    con.execute("ROLLBACK")
            finally:
                con.close()


def _sql_hint(exc: BaseException) -> str:
    return (
        f"SQL error: {exc}\n"
        f"hint: query the table {TABLE} with columns {', '.join(COLUMNS)} "
        "(payload is JSON: payload->>'key'; ts and created_at are UTC timestamps)"
    )
