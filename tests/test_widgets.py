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
    series = {s["series"]: s for s in chart.series}
    assert series["loss"]["y"] == [2.5, 2.1] and series["loss"]["x"] == [1, 2]
    assert series["eval_loss"]["y"] == [2.3] and series["lr"]["y"] == [1e-4, 2e-4]
    # plotly.js travels in the widget's state: the view never has to ask a busy kernel.
    assert "Plotly" in chart.get_state()["_plotly_js"]

    _write(path, tail='9, "lr": 3e-4}\n')  # the line is now complete
    assert chart.refresh() is True
    series = {s["series"]: s for s in chart.series}
    assert series["loss"]["y"] == [2.5, 2.1, 1.9]
    assert chart.refresh() is False  # nothing new


def test_loss_chart_overlays_runs_and_rereads_a_resumed_trace(project):
    a, b = _trace(project, "exp-a"), _trace(project, "exp-b")
    _write(a, *({"step": s, "loss": 3 - s / 10, "lr": 1e-3} for s in range(1, 6)))
    _write(b, {"step": 1, "loss": 4.0, "lr": 1e-3})
    chart = LossChart(project, ["exp-a", "exp-b"], live=False)
    runs = {(s["run"], s["series"]): s for s in chart.series}
    assert len(chart.series) == 6 and chart.run_ids == ["exp-a", "exp-b"]
    assert len(runs[("exp-a", "loss")]["y"]) == 5 and len(runs[("exp-b", "loss")]["y"]) == 1
    # A resume truncates the trace back to its checkpoint; the chart starts over on it.
    a.write_text(json.dumps({"step": 1, "loss": 3.0, "lr": 1e-3}) + "\n")
    chart.refresh()
    runs = {(s["run"], s["series"]): s for s in chart.series}
    assert runs[("exp-a", "loss")]["y"] == [3.0]


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
        trace = next(s for s in chart.series if s["series"] == "loss")
        assert trace["y"] == [1.0, 0.5, 1.0 / 3]
    finally:
        chart.close()
    assert not chart._publisher.is_alive()


# ---- IntrospectionPicker -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def intents_csv() -> str:
    from importlib.resources import files

    return str(files("brewslm_core") / "data" / "brew_intents.csv")


def test_picker_shows_the_engine_ranking_and_picks_nothing(project, intents_csv):
    from brewslm_core.introspect import introspect
    from brewslm_core.mapping.store import read_imports
    from brewslm_widgets import IntrospectionPicker

    w = IntrospectionPicker(intents_csv, project=project)
    expected = introspect(intents_csv, project=project)
    assert w.error == ""
    assert [(h["shape"], h["confidence"]) for h in w.hypotheses] == [
        (h.shape, h.confidence) for h in expected
    ]
    assert all(h["rationale"] for h in w.hypotheses)
    assert w.selected == -1 and w.mapping is None and w.chosen == {}  # never auto-picks
    assert read_imports(project) == []


def test_picker_choice_and_field_map_edits_reach_the_kernel(project, intents_csv):
    from brewslm_core.mapping.store import read_imports
    from brewslm_widgets import IntrospectionPicker

    w = IntrospectionPicker(intents_csv, project=project)
    top = w.hypotheses[0]
    w.set_state({"selected": 0})  # the view's click on the first card
    assert w.mapping.shape == top["shape"] == "classification"
    assert w.mapping.field_map == top["field_map"] == {"text": "text", "label": "intent"}
    assert w.chosen["shape"] == "classification" and w.chosen["force"] is False
    assert w.needs_force is False
    w.set_state({"force": True})  # no force above the threshold
    assert w.force is False

    w.set_state({"field_map": {"text": "intent", "label": "text"}})
    assert w.mapping.field_map == {"text": "intent", "label": "text"}
    assert w.chosen["field_map"] == {"text": "intent", "label": "text"}

    w.select("text")
    assert w.mapping.shape == "text" and w.field_map == w.hypotheses[w.selected]["field_map"]
    with pytest.raises(ValueError, match="no hypothesis for shape 'rag'"):
        w.select("rag")
    assert read_imports(project) == []  # choosing commits nothing


def test_picker_force_box_only_below_threshold(project, shared_data):
    from brewslm_widgets import IntrospectionPicker

    w = IntrospectionPicker(str(shared_data / "dirty" / "frictionless_invalid.csv"),
                            project=project)
    assert w.hypotheses and w.hypotheses[0]["confidence"] < w.threshold
    w.set_state({"selected": 0})
    assert w.needs_force is True and w.force is False
    w.set_state({"force": True})
    assert w.force is True and w.chosen["force"] is True


def test_picker_reports_a_missing_file(project, tmp_path):
    from brewslm_widgets import IntrospectionPicker

    with pytest.raises(Exception, match="does not exist"):  # a notebook cell fails with it
        IntrospectionPicker(str(tmp_path / "nope.csv"), project=project)


# ---- RejectionTable ----------------------------------------------------------------------------
@pytest.fixture()
def intents_mapping(project, intents_csv):
    from brewslm_widgets import IntrospectionPicker

    picker = IntrospectionPicker(intents_csv, project=project)
    picker.select("classification")
    return picker.mapping


def test_rejection_table_matches_the_dry_run(project, intents_csv, intents_mapping):
    from brewslm_core.mapping import dry_run
    from brewslm_widgets import RejectionTable

    w = RejectionTable(project, intents_csv, intents_mapping)
    report = dry_run(intents_csv, "classification", intents_mapping.field_map,
                     intents_mapping.options, project=project)
    assert w.error == ""
    assert w.summary["total"] == report.total == w.summary["accepted"] + w.summary["rejected"]
    assert {g["reason"]: g["count"] for g in w.groups} == report.by_reason
    assert len(w.groups) >= 2  # the bundled file has several kinds of bad rows
    for group in w.groups:
        assert group["description"] and not group["dropped"]
        assert 1 <= len(group["examples"]) <= 5
        assert all("row_index" in ex and ex["detail"] for ex in group["examples"])
    assert len(w.accepted_sample) == 20 and "label" in w.accepted_sample[0]["record"]


def test_bulk_drop_changes_only_the_rendered_sample(project, intents_csv, intents_mapping):
    from brewslm_widgets import RejectionTable

    w = RejectionTable(project, intents_csv, intents_mapping)
    before_summary, before_counts = dict(w.summary), {g["reason"]: g["count"] for g in w.groups}
    reason = w.groups[0]["reason"]
    click(w, type="drop", reason=reason, seq=7)
    assert w.error == "" and w.last_action["seq"] == 7
    assert w.dropped_reasons == [reason]
    assert reason in w.report.dropped_reasons  # the engine ran again with the drop
    dropped = next(g for g in w.groups if g["reason"] == reason)
    assert dropped["dropped"] is True and dropped["examples"] == []
    assert {g["reason"]: g["count"] for g in w.groups} == before_counts  # counts stay
    assert w.summary == before_summary
    others = [g for g in w.groups if g["reason"] != reason]
    assert all(g["examples"] for g in others)

    click(w, type="undrop", reason=reason)
    assert w.dropped_reasons == [] and next(
        g for g in w.groups if g["reason"] == reason)["examples"]

    click(w, type="drop", reason="made_up_reason")
    assert "unknown reason code" in w.error and w.dropped_reasons == []
    # The same from a notebook cell raises to the caller (and still shows in the widget).
    with pytest.raises(ValueError, match="unknown reason code"):
        w.drop("made_up_reason")
    assert "unknown reason code" in w.error


def test_python_calls_raise_to_the_notebook(events_project):
    w = EventTimeline(events_project)
    with pytest.raises(Exception, match="nope"):
        w.run_sql("SELECT nope FROM run_events")
    assert "nope" in w.error and w.rows == []
    w.run_sql("")
    assert w.error == "" and w.total == 3


def test_commit_click_writes_rows_and_shows_its_event(project, intents_csv, intents_mapping):
    from brewslm_core.mapping.store import read_committed, read_imports
    from brewslm_widgets import RejectionTable

    w = RejectionTable(project, intents_csv, intents_mapping)
    click(w, type="drop", reason=w.groups[0]["reason"])  # dropping never changes the commit
    click(w, type="commit", seq=3)
    assert w.error == ""
    assert w.committed["accepted"] == w.summary["accepted"]
    assert w.committed["rejected"] == w.summary["rejected"]
    event = w.commit_event
    assert event["reason_code"] == "dataset_import_run" and event["stage"] == "ingestion"
    assert event["id"] == w.result.event_id
    assert event["payload"]["accepted"] == w.summary["accepted"]
    assert sum(1 for _ in read_committed(project)) == w.summary["accepted"]

    click(w, type="commit")  # a second click does not import twice
    assert "already committed" in w.error
    assert len(read_imports(project)) == 1
    with pytest.raises(RuntimeError, match="already committed"):
        w.commit()


def test_after_a_commit_the_table_shows_the_imports_audit(project, intents_csv, intents_mapping):
    from brewslm_core.mapping.store import read_imports
    from brewslm_widgets import RejectionTable

    w = RejectionTable(project, intents_csv, intents_mapping)
    before = {g["reason"]: g["count"] for g in w.groups}
    click(w, type="commit")
    audit = read_imports(project)[0]
    assert audit["accepted"] > 0
    # Touching the table after the commit (drop, refresh) must not dry-run the source against
    # the rows it just wrote: that would show every row as a duplicate of itself.
    reason = w.groups[0]["reason"]
    click(w, type="drop", reason=reason)
    w.refresh()
    assert w.error == ""
    assert w.summary["accepted"] == audit["accepted"] == w.committed["accepted"]
    assert w.summary["rejected"] == audit["rejected"]
    assert {g["reason"]: g["count"] for g in w.groups} == audit["by_reason"] == before
    assert next(g for g in w.groups if g["reason"] == reason)["dropped"] is True
    assert all(g["examples"] for g in w.groups if g["reason"] != reason)


def test_low_confidence_commit_needs_the_force_box(project, shared_data):
    from brewslm_core.mapping.store import read_imports
    from brewslm_widgets import IntrospectionPicker, RejectionTable

    locator = str(shared_data / "dirty" / "frictionless_invalid.csv")
    picker = IntrospectionPicker(locator, project=project)
    picker.select(0)
    w = RejectionTable(project, locator, picker.mapping, force=picker.force)
    assert w.needs_force is True and w.force is False
    click(w, type="commit")
    assert w.error and w.committed == {}
    assert read_imports(project) == []
    w.set_state({"force": True})
    click(w, type="commit")
    assert w.error == "" and w.commit_event["reason_code"] == "dataset_import_run"
    assert len(read_imports(project)) == 1


def test_rejection_table_needs_a_mapping(project, intents_csv):
    from brewslm_widgets import RejectionTable

    with pytest.raises(ValueError, match="choose a mapping first"):
        RejectionTable(project, intents_csv, None)


# ---- CleaningPanel -------------------------------------------------------------------------------
def test_cleaning_panel_runs_a_clean_in_the_background(project, intents_csv):
    from brewslm_core import tasks
    from brewslm_core.mapping import commit
    from brewslm_widgets import CleaningPanel

    commit(project, intents_csv, "classification")
    w = CleaningPanel(project)
    assert w.state == "" and w.report == {}  # no clean yet
    click(w, type="start", seq=1)
    assert w.error == "" and w.task_id
    assert w.wait(timeout=120) == "succeeded", w.error
    status = tasks.status(project, w.task_id)
    assert status.state == "succeeded"
    assert w.report["input_rows"] == status.result["input_rows"] > 0
    assert w.removed_by_reason == status.result["removed_by_reason"]
    assert w.pii_by_type == status.result["pii_by_type"]
    assert w.quality_hist["counts"] == status.result["quality_histogram"]["counts"]
    assert sum(w.quality_hist["counts"]) > 0
    assert len(w.quality_hist["edges"]) == len(w.quality_hist["counts"]) + 1
    assert w.total > 0 and w.done == w.total  # progress came from the task file

    again = CleaningPanel(project)  # a fresh panel (e.g. the dashboard) shows the last report
    assert again.report == w.report and again.state == "succeeded"


# ---- ImportFlow and read-only tables -------------------------------------------------------------
def test_import_flow_builds_a_table_for_the_chosen_hypothesis(project, intents_csv):
    from brewslm_core.mapping.store import read_imports
    from brewslm_widgets import ImportFlow

    flow = ImportFlow(project, intents_csv)
    assert flow.table is None and len(flow.children) == 2
    flow.picker.set_state({"selected": 0})
    first = flow.table
    assert first is not None and first.shape == "classification"
    assert flow.children[1] is first
    flow.picker.select("text")
    assert flow.table is not first and flow.table.shape == "text"
    flow.picker.select("classification")
    click(flow.table, type="commit")
    assert flow.table.error == "" and read_imports(project)[0]["shape"] == "classification"


def test_readonly_table_has_no_commit(project, intents_csv, intents_mapping):
    from brewslm_core.mapping import commit
    from brewslm_widgets import RejectionTable

    commit(project, intents_csv, "classification")
    w = RejectionTable(project, intents_csv, intents_mapping, readonly=True)
    # the source on its own: rows already committed do not count as duplicates here
    assert w.summary["accepted"] > 0
    click(w, type="commit")
    assert "read-only" in w.error and w.committed == {}


def test_timeline_follows_new_events_on_its_own(events_project):
    w = EventTimeline(events_project, auto_refresh=0.05)
    try:
        sent = []
        w.observe(lambda change: sent.append(change["new"]), names=["rows"])
        time.sleep(0.3)
        assert sent == []  # nothing new: nothing is pushed (an idle dashboard stays idle)
        events_project.events.append(stage="export", severity="info", summary="exported")
        deadline = time.monotonic() + 20
        while w.total < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.total == 4 and len(sent) == 1
    finally:
        w.close()


def test_runs_board_lists_runs_with_final_metrics(project):
    from brewslm_widgets.runs import RunsBoard

    board = RunsBoard(project, auto=False)
    assert board.rows == [] and board.chart is None
    assert "No training runs yet" in board.children[0].value  # says how to get one
    path = _trace(project, "exp-done")
    _write(path, *({"step": s, "loss": 2 - s / 10, "lr": 1e-3} for s in range(1, 4)))
    project.events.append(stage="training", severity="info", summary="training finished",
                          run_id="exp-done",
                          payload={"final_train_loss": 1.7, "eval": {"accuracy": 0.5, "n": 4}})
    _write(_trace(project, "exp-live"), {"step": 1, "loss": 3.0, "lr": 1e-3})
    assert board.refresh() is True
    rows = {r["run_id"]: r for r in board.rows}
    assert rows["exp-done"]["status"] == "completed" and rows["exp-done"]["train steps"] == 3
    assert rows["exp-done"]["final train loss"] == 1.7 and rows["exp-done"]["accuracy"] == 0.5
    assert rows["exp-live"]["status"] == "running"
    assert sorted(board.chart.run_ids) == ["exp-done", "exp-live"]
    assert board.refresh() is False  # nothing changed: nothing re-sent
    project.events.append(stage="training", severity="error", reason_code="training_oom",
                          summary="out of memory", run_id="exp-live")
    assert board.refresh() is True
    assert {r["run_id"]: r for r in board.rows}["exp-live"]["status"] == "failed: training_oom"
    board.close()
