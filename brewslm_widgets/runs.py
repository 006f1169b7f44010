"""RunsBoard: a project's training runs, their final metrics and loss curves, refreshed on its own."""

from __future__ import annotations

import html
import json
import threading
from typing import Any

import ipywidgets

from ._base import as_json_value
from .loss_chart import LossChart

METRICS = ("accuracy", "macro_f1", "eval_loss")


def run_rows(project: Any) -> list[dict[str, Any]]:
    """One row per run directory with a trace: status, steps, final loss, eval metrics (newest first).

    Status and metrics come from the run's training events (``project.events``); a run with a
    trace and no closing event is still running (or was killed before it could say so).
    """
    runs = sorted((d for d in project.runs_dir.iterdir() if (d / "trace.jsonl").is_file()),
                  key=lambda d: (d / "trace.jsonl").stat().st_mtime, reverse=True) \
        if project.runs_dir.is_dir() else []
    if not runs:
        return []
    ids = ", ".join("'" + d.name.replace("'", "''") + "'" for d in runs)
    frame = project.events.query(
        "SELECT run_id, severity, reason_code, summary, payload FROM run_events "
        f"WHERE stage = 'training' AND run_id IN ({ids}) ORDER BY id")
    last: dict[str, dict[str, Any]] = {}
    for rec in frame.to_dict("records"):
        payload = as_json_value(rec["payload"]) or {}
        if rec["severity"] in ("error", "critical") or "final_train_loss" in payload:
            last[rec["run_id"]] = {**rec, "payload": payload}
    rows = []
    for d in runs:
        steps = sum(1 for line in (d / "trace.jsonl").read_text(encoding="utf-8").splitlines()
                    if '"loss"' in line and '"eval_loss"' not in line)
        event = last.get(d.name)
        row: dict[str, Any] = {"run_id": d.name, "train steps": steps}
        if event is None:
            row["status"] = "running"
        elif event["severity"] in ("error", "critical"):
            row["status"] = f"failed: {event['reason_code']}"
        else:
            row["status"] = "completed"
            payload = event["payload"]
            row["final train loss"] = round(float(payload["final_train_loss"]), 4)
            for name in METRICS:
                value = (payload.get("eval") or {}).get(name)
                if value is not None:
                    row[name.replace("_", " ")] = round(float(value), 4)
        rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ("<div class='bsl bsl-empty'>No training runs yet: train one in Track 1 lesson 04 "
                "or with <code>brewslm train</code>.</div>")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr class='bsl-run' data-run='{html.escape(r['run_id'])}'>"
        + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows)
    return (f"<div class='bsl bsl-runs'><div class='bsl-title'>Runs <span class='bsl-count'>"
            f"{len(rows)}</span></div><table class='bsl-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


class RunsBoard(ipywidgets.VBox):
    """The runs table and one LossChart overlaying every run; a thread re-reads them every ``every`` s.

    The table is re-sent only when it changed, and the chart is rebuilt only when a run appears,
    so an idle dashboard sends nothing (Voila's idle-kernel culling can still reclaim it).
    """

    def __init__(self, project: Any, *, every: float = 5.0, auto: bool = True) -> None:
        self.project = project
        self.every = every
        self._rows: list[dict[str, Any]] = []
        self._table = ipywidgets.HTML(_table([]))
        self.chart: LossChart | None = None
        self._stop = threading.Event()
        super().__init__(children=[self._table])
        self.refresh()
        self._thread: threading.Thread | None = None
        if auto:
            self._thread = threading.Thread(target=self._follow, name="brewslm-runs", daemon=True)
            self._thread.start()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def refresh(self) -> bool:
        """Re-read the runs; True when anything shown changed."""
        rows = run_rows(self.project)
        if json.dumps(rows, sort_keys=True) == json.dumps(self._rows, sort_keys=True):
            return False
        old_ids = [r["run_id"] for r in self._rows]
        self._rows = rows
        self._table.value = _table(rows)
        ids = [r["run_id"] for r in rows]
        if ids and (self.chart is None or ids != old_ids):
            old, self.chart = self.chart, LossChart(self.project, ids, poll=1.0,
                                                    title="Loss per step, every run")
            self.children = [self._table, self.chart]
            if old is not None:
                old.close()
        return True

    def _follow(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.refresh()
            except Exception as exc:  # a dashboard must keep going; say what went wrong
                self._table.value = f"<div class='bsl-error'>{html.escape(repr(exc))}</div>"

    def close(self) -> None:
        self._stop.set()
        if self.chart is not None:
            self.chart.close()
        super().close()
