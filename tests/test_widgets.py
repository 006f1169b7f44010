"""Widget traits and messages, through the real engine (events store, introspect, map, clean).

Front-end actions are simulated the way the browser sends them: ``set_state`` for a trait the
view changes, ``_handle_custom_msg`` for a click message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from brewslm_widgets import EventTimeline, LossChart


def click(widget, **content) -> None:
    widget._handle_custom_msg(content, [])


# ---- EventTimeline -------------------------------------------------------------------------
@pytest.fixture()
def events_project(project):
    ev = project.events
    ev.append(stage="ingestion", severity="info", summary="imported 10 rows",
              payload={"accepted": 10, "rejected": 2}, run_id="imp-a")
    ev.append(stage="cleaning", severity="warning", summary="many near duplicates",
              payload={"near_dup": 40})
    ev.append(stage="training", severity="error", reason_code="training_oom",
              summary="out of memory at step 3", payload={"step": 3}, run_id="exp-1")
    return project


def test_timeline_lists_events_with_payload_and_reason(events_project):
    w = EventTimeline(events_project)
    assert w.error == ""
    assert w.total == 3
    cols = w.columns
    by_sev = {row[cols.index("severity")]: row for row in w.rows}
    err = by_sev["error"]
    assert err[cols.index("reason_code")] == "training_oom"
    assert err[cols.index("payload")] == {"step": 3}  # JSON text from DuckDB became data
    assert set(w.stages) >= {"ingestion", "training"} and w.severities[0] == "info"
    df = w.dataframe
    assert len(df) == 3 and "payload" in df.columns
    df.drop(df.index, inplace=True)  # a copy: the widget keeps its rows
    assert len(w.dataframe) == 3


def test_timeline_filters_come_from_the_view(events_project):
    w = EventTimeline(events_project)
    w.set_state({"stage": "training"})
    assert w.total == 1 and w.rows[0][w.columns.index("run_id")] == "exp-1"
    w.set_state({"stage": "", "severity": "warning"})
    assert w.total == 1 and w.rows[0][w.columns.index("stage")] == "cleaning"
    w.set_state({"severity": "", "run_id": "imp-a"})
    assert w.total == 1
    w.set_state({"run_id": "", "text": "near duplicates"})
    assert w.total == 1 and w.dataframe.iloc[0]["stage"] == "cleaning"


def test_timeline_sql_box_and_bad_sql(events_project):
    w = EventTimeline(events_project)
    click(w, type="sql", sql="SELECT stage, count(*) AS n FROM run_events GROUP BY stage "
                             "ORDER BY stage", seq=1)
    assert w.error == ""
    assert w.columns == ["stage", "n"]
    assert w.rows == [["cleaning", 1], ["ingestion", 1], ["training", 1]]
    assert w.last_action["type"] == "sql" and w.last_action["seq"] == 1
    assert list(w.dataframe["n"]) == [1, 1, 1]

    click(w, type="sql", sql="SELECT nope FROM run_events")
    assert "nope" in w.error  # the engine's message reaches the view
    assert w.rows == [] and w.dataframe.empty  # no stale rows under an error

    click(w, type="sql", sql="")  # back to the filters
    assert w.error == "" and w.total == 3


def test_timeline_refresh_sees_new_events(events_project):
    w = EventTimeline(events_project)
    events_project.events.append(stage="export", severity="critical",
                                 reason_code="export_run_failed", summary="export broke")
    assert w.total == 3
    click(w, type="refresh")
    assert w.total == 4
    first = w.rows[0]
    assert w.columns[0] == "id" and first[w.columns.index("severity")] in {"critical", "info"}


def test_unknown_action_is_reported_not_raised(events_project):
    w = EventTimeline(events_project)
    click(w, type="explode")
    assert "unknown action" in w.error
    w._handle_custom_msg("not a dict", [])
    assert "unknown action" in w.error


# ---- LossChart -------------------------------------------------------------------------------
def _trace(project, run_id: str) -> Path:
    path = project.run_dir(run_id) / "trace.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, *lines: dict, tail: str = "") -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
        fh.write(tail)


def test_loss_chart_reads_train_eval_lr_and_waits_for_whole_lines(project):
    path = _trace(project, "exp-a")
    _write(path, {"step": 1, "epoch": 0, "loss": 2.5, "lr": 1e-4},
           {"step": 2, "epoch": 0, "loss": 2.1, "lr": 2e-4},
           {"step": 2, "eval_loss": 2.3, "split": "eval"},
           tail='{"step": 3, "loss": 1.')  # the trainer is mid-write
    chart = LossChart(project, "exp-a", live=False)
    assert chart.points("exp-a") == {"loss": 2, "eval_loss": 1, "lr": 2}
    series = {t.meta["series"]: t for t in chart.figure.data}
    assert list(series["loss"].y) == [2.5, 2.1] and list(series["loss"].x) == [1, 2]
    assert list(series["eval_loss"].y) == [2.3] and series["lr"].yaxis == "y2"

    _write(path, tail='9, "lr": 3e-4}\n')  # the line is now complete
    assert chart.refresh() is True
    assert list(series["loss"].y) == [2.5, 2.1, 1.9]
    assert chart.refresh() is False  # nothing new


def test_loss_chart_overlays_runs_and_rereads_a_resumed_trace(project):
    a, b = _trace(project, "exp-a"), _trace(project, "exp-b")
    _write(a, *({"step": s, "loss": 3 - s / 10, "lr": 1e-3} for s in range(1, 6)))
    _write(b, {"step": 1, "loss": 4.0, "lr": 1e-3})
    chart = LossChart(project, ["exp-a", "exp-b"], live=False)
    runs = {(t.meta["run"], t.meta["series"]): t for t in chart.figure.data}
    assert len(chart.figure.data) == 6
    assert len(runs[("exp-a", "loss")].y) == 5 and len(runs[("exp-b", "loss")].y) == 1
    # A resume truncates the trace back to its checkpoint; the chart starts over on it.
    a.write_text(json.dumps({"step": 1, "loss": 3.0, "lr": 1e-3}) + "\n")
    chart.refresh()
    assert list(runs[("exp-a", "loss")].y) == [3.0]


def test_loss_chart_publisher_thread_follows_a_live_trace(project):
    path = _trace(project, "exp-live")
    chart = LossChart(project, "exp-live", poll=0.05)
    try:
        assert chart.points("exp-live")["loss"] == 0
        for step in range(1, 4):
            _write(path, {"step": step, "loss": 1.0 / step, "lr": 1e-4})
        deadline = time.monotonic() + 20
        while chart.points("exp-live")["loss"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        trace = next(t for t in chart.figure.data if t.meta["series"] == "loss")
        assert list(trace.y) == [1.0, 0.5, 1.0 / 3]
    finally:
        chart.close()
    assert not chart._publisher.is_alive()
