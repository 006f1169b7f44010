"""EventStore: validate RunEvents at the boundary, append them to the log, query them with SQL.

Appends never touch DuckDB (see log.py), so a writer never meets a DuckDB lock. Queries bring
the DuckDB index up to date first (see db.py). There is no update or delete: a correction is a
new event.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts import KNOWN_STAGES, SEVERITIES, RunEvent, check_event_fields
from .db import COLUMNS, TABLE, EventIndex, EventQueryError
from .log import LOG_NAME, EventLog

if TYPE_CHECKING:
    import pandas

__all__ = ["EventStore", "EventQueryError", "parent_run"]

# The run every event appended in this context belongs under (autopilot sets it around the stages
# it drives), so stages need not thread a parent_run_id through every call.
_PARENT_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("brewslm_parent_run",
                                                                        default=None)


@contextlib.contextmanager
def parent_run(run_id: str) -> Iterator[None]:
    """Events appended inside this block (same thread/task) get ``parent_run_id=run_id``."""
    token = _PARENT_RUN.set(run_id)
    try:
        yield
    finally:
        _PARENT_RUN.reset(token)


def _optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def _encode_payload(payload: Any) -> str:
    if payload is None:
        return "{}"
    if not isinstance(payload, dict):
        raise ValueError(
            f"payload must be a dict (a JSON object), got {type(payload).__name__}; "
            "wrap it, e.g. payload={'value': ...}"
        )
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(
            f"payload is not JSON-serialisable: {exc}; convert it to plain dicts, lists, str, "
            "int, finite float, bool or None (e.g. str(path), list(a_set), value.isoformat())"
        ) from exc


def _as_utc(ts: Any) -> datetime | None:
    if ts is None:
        return None
    if not isinstance(ts, datetime):
        raise ValueError(f"ts must be a datetime or None, got {type(ts).__name__}")
    # A naive datetime is taken as UTC: the store keeps every time in UTC.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _check_choice(value: str, known: Sequence[str], what: str) -> None:
    if value not in known:
        close = difflib.get_close_matches(str(value), list(known), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown {what} {value!r}{hint} (known: {', '.join(sorted(known))})")


def _as_list(value: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    for item in values:
        _check_choice(item, known, what)
    return values


def _decode_payload(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


class EventStore:
    """The RunEvent store of one project directory (``<project>/events``)."""

    def __init__(self, events_dir: Path, project_id: int) -> None:
        self.events_dir = Path(events_dir)
        self.project_id = int(project_id)
        self._log = EventLog(self.events_dir / LOG_NAME)
        self._index = EventIndex(self.events_dir, self._log)

    @property
    def log_path(self) -> Path:
        return self._log.path

    def append(
        self,
        *,
        stage: str,
        severity: str,
        summary: str | None = None,
        payload: dict | None = None,
        reason_code: str | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        actor: str = "system",
        ts: datetime | None = None,
    ) -> RunEvent:
        """Validate and durably record one event; returns it with its id and times.

        ``ts`` defaults to now; a naive ``ts`` is read as UTC. ``created_at`` is always the
        insert time. Raises ValueError for anything the RunEvent contract refuses.
        """
        check_event_fields(stage, severity, reason_code)
        if parent_run_id is None:
            ambient = _PARENT_RUN.get()
            parent_run_id = ambient if ambient != run_id else None
        if summary is not None and not isinstance(summary, str):
            raise ValueError(f"summary must be a string or None, got {type(summary).__name__}")
        if not isinstance(actor, str) or not actor.strip():
            raise ValueError(f"actor must be a non-empty string, got {actor!r}")
        body = {
            "project_id": self.project_id,
            "run_id": _optional_text(run_id, "run_id"),
            "parent_run_id": _optional_text(parent_run_id, "parent_run_id"),
            "stage": stage,
            "severity": severity,
            "reason_code": reason_code,
            "actor": actor,
            "summary": summary,
        }
        payload_json = _encode_payload(payload)
        try:
            head = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            encoded = (head[:-1] + ',"payload":' + payload_json + "}").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"event text is not valid Unicode (lone surrogate?): {exc}") from exc
        done = self._log.append(encoded, _as_utc(ts))
        return RunEvent(
            id=done.id,
            payload=json.loads(payload_json),
            ts=done.ts,
            created_at=done.created_at,
            **body,
        )

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> pandas.DataFrame:
        """Run read-only SQL over the table ``run_events`` (seed columns; payload is JSON text).

        Sees every event appended so far by any process. ``params`` binds ``?``/``$name``
        placeholders. Bad SQL or a statement that would change data raises EventQueryError.
        """
        return self._index.query(sql, params)

    def list(
        self,
        *,
        stage: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        run_id: str | None = None,
        text: str | None = None,
        limit: int | None = 500,
    ) -> pandas.DataFrame:
        """The newest events first, filtered; ``payload`` comes back as dicts.

        ``text`` matches (case-insensitively) summary, reason_code, run_id, actor and payload.
        ``limit=None`` returns everything.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("stage", _as_list(stage, sorted(KNOWN_STAGES), "stage")),
            ("severity", _as_list(severity, SEVERITIES, "severity")),
        ):
            if values:
                where.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if run_id is not None:
            where.append("(run_id = ? OR parent_run_id = ?)")
            params.extend([run_id, run_id])
        if text:
            where.append(
                "concat_ws(' ', summary, reason_code, run_id, actor, payload::VARCHAR)"
                " ILIKE ? ESCAPE '\\'"
            )
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ValueError(f"limit must be a positive int or None, got {limit!r}")
            sql += f" LIMIT {limit}"
        frame = self.query(sql, params)
        frame["payload"] = frame["payload"].map(_decode_payload).astype(object)
        return frame

    def get(self, event_id: int) -> RunEvent:
        """One event by id as a RunEvent; KeyError if there is none."""
        frame = self.query(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id = ?", [event_id])
        if frame.empty:
            raise KeyError(f"no event with id {event_id} in {self.events_dir}")
        row = frame.iloc[0]
        fields: dict[str, Any] = {}
        for column in COLUMNS:
            value = row[column]
            if column == "payload":
                value = _decode_payload(value)
            elif column in ("ts", "created_at"):
                value = value.to_pydatetime()
            elif column in ("id", "project_id"):
                value = int(value)
            elif not isinstance(value, str):
                value = None  # pandas gives NaN/None for SQL NULL text
            fields[column] = value
        return RunEvent(**fields)

    def refresh(self) -> None:
        """Bring the DuckDB index up to date now (queries do this themselves)."""
        self._index.refresh()
