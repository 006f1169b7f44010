"""EventTimeline: the project's RunEvents with filters, an SQL box and expandable payloads."""

from __future__ import annotations

import threading
from typing import Any

import traitlets as t

from ._base import BrewWidget, as_json_value, frame_to_table, static_text


class EventTimeline(BrewWidget):
    """RunEvents from the project's DuckDB store.

    Filters (stage, severity, run id, text) go through ``project.events.list``; the SQL box goes
    through ``project.events.query`` over the ``run_events`` view. ``.dataframe`` is the pandas
    result currently shown.
    """

    _esm = static_text("common.js", "timeline.js")

    stages = t.List(t.Unicode()).tag(sync=True)
    severities = t.List(t.Unicode()).tag(sync=True)
    stage = t.Unicode("").tag(sync=True)
    severity = t.Unicode("").tag(sync=True)
    run_id = t.Unicode("").tag(sync=True)
    text = t.Unicode("").tag(sync=True)
    limit = t.Int(200).tag(sync=True)
    sql = t.Unicode("").tag(sync=True)  # non-empty: the SQL box is in charge
    columns = t.List(t.Unicode()).tag(sync=True)
    rows = t.List(t.List()).tag(sync=True)
    total = t.Int(0).tag(sync=True)

    def __init__(self, project: Any, *, limit: int = 200, auto_refresh: float = 0.0,
                 **kwargs: Any) -> None:
        from brewslm_core.contracts import KNOWN_STAGES, SEVERITIES

        super().__init__(stages=sorted(KNOWN_STAGES), severities=list(SEVERITIES), limit=limit,
                         **kwargs)
        self.project = project
        self._frame = None
        self._stop = threading.Event()
        self.observe(self._filters_changed, names=["stage", "severity", "run_id", "text", "limit"])
        self.refresh()
        if auto_refresh > 0:  # dashboards: new events show up without a click
            threading.Thread(target=self._follow, args=(auto_refresh,), name="brewslm-timeline",
                             daemon=True).start()

    def _follow(self, every: float) -> None:
        """Re-read the filtered events; push them only when they changed (an idle page stays idle)."""
        while not self._stop.wait(every):
            if self.sql or self.busy:
                continue  # the SQL box is in charge, or a click is being handled
            try:
                frame = self._filtered()
                shown = [row[self.columns.index("id")] for row in self.rows] \
                    if "id" in self.columns else None
                if shown is None or [int(i) for i in frame["id"]] != shown:  # events only append
                    self._show(frame)
            except Exception as exc:  # keep following; say what went wrong
                self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._stop.set()
        super().close()

    @property
    def dataframe(self):  # -> pandas.DataFrame
        """The pandas result currently shown (a copy, safe to change)."""
        import pandas as pd

        return pd.DataFrame() if self._frame is None else self._frame.copy()

    def refresh(self) -> None:
        """Re-read the store with the current filters (or the SQL box when it holds a query)."""
        self._guarded(self._load)

    def run_sql(self, sql: str) -> None:
        """Show the result of SQL over ``run_events``; an empty string returns to the filters."""
        self.sql = sql.strip()
        self.refresh()

    def _load(self) -> None:
        events = self.project.events
        if self.sql:
            try:
                frame = events.query(self.sql)
            except Exception:
                self._show(None)  # a failed query shows nothing rather than stale rows
                raise
        else:
            frame = self._filtered()
        self._show(frame)

    def _filtered(self) -> Any:
        return self.project.events.list(
            stage=self.stage or None,
            severity=self.severity or None,
            run_id=self.run_id or None,
            text=self.text or None,
            limit=self.limit,
        )

    def _show(self, frame: Any) -> None:
        self._frame = frame
        columns, rows = frame_to_table(frame)
        if "payload" in columns:
            at = columns.index("payload")
            for row in rows:
                row[at] = as_json_value(row[at])
        with self.hold_sync():
            self.columns = columns
            self.rows = rows
            self.total = len(rows)

    def _filters_changed(self, _change: Any) -> None:
        if not self.sql:  # a trait change (often from the view) has no caller to raise to
            self._guarded(self._load, reraise=False)

    # ---- front-end actions ----------------------------------------------------------
    def _on_refresh(self, _content: dict) -> None:
        self._load()

    def _on_sql(self, content: dict) -> None:
        self.sql = str(content.get("sql", "")).strip()
        self._load()
