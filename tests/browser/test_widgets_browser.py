"""Every widget in a real browser against a real Voila / JupyterLab server and the real engine.

Run: ``pytest tests/browser --browser chromium`` (marker ``browser``). Screenshots and
round-trip figures land in ``test-artifacts/``.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path

import pytest
from browser_harness import record_latency, screenshot, write_notebook

from brewslm_core import Project

REPO = Path(__file__).resolve().parents[2]
INTENTS = str(files("brewslm_core") / "data" / "brew_intents.csv")
OPEN_PROJECT = """import os
from brewslm_core import Project
import brewslm_widgets as bw
project = Project.open(os.environ["BREWSLM_PROJECT"])
locator = os.environ.get("BREWSLM_LOCATOR", "")"""


@pytest.fixture(scope="module")
def rich_project(tmp_path_factory) -> Project:
    """A project with an import, a clean report and events of several severities."""
    from brewslm_core.clean import clean
    from brewslm_core.mapping import commit

    project = Project.create(tmp_path_factory.mktemp("rich") / "proj")
    commit(project, INTENTS, "classification")
    project.events.append(stage="training", severity="error", reason_code="training_oom",
                          summary="out of memory at step 3", payload={"step": 3},
                          run_id="exp-old")
    project.events.append(stage="cleaning", severity="warning", summary="many near duplicates")
    clean(project)
    return project


def rtts(page, root: str) -> float:
    """The round trip the view measured for its last click (click -> kernel -> re-render)."""
    return float(page.locator(root).first.get_attribute("data-rtt-ms"))


def wait_settled(page, root: str, seq: int) -> None:
    page.wait_for_selector(f'{root}[data-settled="{seq}"]')


def test_every_widget_renders_in_voila(tmp_path, start_server, offline_page, rich_project):
    page, log = offline_page
    nb = write_notebook(tmp_path / "nb" / "widgets.ipynb", [
        OPEN_PROJECT,
        "bw.EventTimeline(project)",
        "bw.IntrospectionPicker(locator, project=project)",
        "from brewslm_core.mapping import dry_run\n"
        "picker = bw.IntrospectionPicker(locator, project=project)\n"
        "picker.select('classification')\n"
        "bw.RejectionTable(project, locator, picker.mapping, readonly=True)",
        "bw.CleaningPanel(project)",
        "bw.LossChart(project, ['exp-none'], live=False)",
    ])
    server = start_server("voila", nb, env={"BREWSLM_PROJECT": str(rich_project.root),
                                             "BREWSLM_LOCATOR": INTENTS})
    page.goto(server.url, wait_until="commit")  # Voila streams while cells run
    page.wait_for_selector(".bsl-timeline tr.bsl-row")
    page.wait_for_selector(".bsl-picker .bsl-hyp")
    page.wait_for_selector(".bsl-rejections tr.bsl-group")
    page.wait_for_selector(".bsl-cleaning .bsl-report")
    page.wait_for_selector('.bsl-loss[data-points="0"] .js-plotly-plot')

    assert page.locator(".bsl-timeline tr.bsl-row").count() >= 3
    error_row = page.locator(".bsl-timeline tr.bsl-sev-error")
    assert error_row.locator(".bsl-reason").inner_text() == "training_oom"
    error_row.click()  # a row expands to its payload
    assert '"step": 3' in page.locator(".bsl-payload").inner_text()
    assert page.locator(".bsl-picker .bsl-hyp").first.get_attribute("data-shape") == (
        "classification")
    assert page.locator(".bsl-rejections tr.bsl-group").count() >= 2
    assert page.locator(".bsl-cleaning .bsl-removed").count() == 1

    # The SQL box: a query typed in the page runs in the kernel and re-renders the table.
    page.fill(".bsl-timeline .bsl-sql", "SELECT severity, count(*) AS n FROM run_events "
                                        "GROUP BY severity ORDER BY severity")
    page.click(".bsl-timeline .bsl-run-sql")
    wait_settled(page, ".bsl-timeline", 1)
    headers = page.locator(".bsl-timeline th").all_inner_texts()
    assert headers == ["severity", "n"]
    record_latency("timeline_sql_voila", [rtts(page, ".bsl-timeline")])
    screenshot(page, "voila-every-widget")
    assert log.errors == []


def test_picker_choice_and_bulk_drop_change_engine_state(tmp_path, start_server, offline_page):
    from brewslm_core.mapping.store import read_imports

    project = Project.create(tmp_path / "fresh")
    page, log = offline_page
    nb = write_notebook(tmp_path / "nb" / "flow.ipynb", [
        OPEN_PROJECT, "flow = bw.ImportFlow(project, locator)\nflow"])
    server = start_server("voila", nb, env={"BREWSLM_PROJECT": str(project.root),
                                             "BREWSLM_LOCATOR": INTENTS})
    page.goto(server.url, wait_until="commit")  # Voila streams while cells run
    page.wait_for_selector(".bsl-picker .bsl-hyp")
    assert page.locator(".bsl-chosen").get_attribute("data-shape") == ""  # no auto-pick

    # Choose: the kernel's picker.mapping comes back as the "chosen" echo, and the flow
    # builds a dry-run table for exactly that mapping.
    picks = []
    for shape in ["text", "classification", "text", "classification"]:
        page.click(f'.bsl-hyp[data-shape="{shape}"]')
        page.wait_for_selector(f'.bsl-chosen[data-shape="{shape}"]')
        page.wait_for_selector(".bsl-rejections")
        picks.append(rtts(page, ".bsl-picker"))
        assert page.locator(".bsl-rejections .bsl-title").first.inner_text().startswith(
            f"Dry run: {shape}")
    record_latency("picker_choose_voila", picks)

    # Bulk-drop: the engine re-runs the dry run without that reason's examples; counts stay.
    groups = page.locator(".bsl-rejections tr.bsl-group")
    reason = groups.first.get_attribute("data-reason")
    count_before = groups.first.locator(".bsl-group-count").inner_text()
    summary_before = page.locator(".bsl-summary").inner_text()
    drops, seq = [], 0
    for _ in range(3):
        page.click(f'.bsl-group[data-reason="{reason}"] .bsl-drop')
        seq += 1
        wait_settled(page, ".bsl-rejections", seq)
        drops.append(rtts(page, ".bsl-rejections"))
        dropped = page.locator(f'.bsl-group[data-reason="{reason}"]')
        assert "bsl-group-dropped" in dropped.get_attribute("class")
        assert dropped.locator(".bsl-toggle").count() == 0  # its examples left the sample
        assert dropped.locator(".bsl-group-count").inner_text() == count_before
        assert page.locator(".bsl-summary").inner_text() == summary_before
        page.click(f'.bsl-group[data-reason="{reason}"] .bsl-undrop')
        seq += 1
        wait_settled(page, ".bsl-rejections", seq)
        drops.append(rtts(page, ".bsl-rejections"))
    record_latency("rejections_drop_voila", drops)
    page.click(f'.bsl-group[data-reason="{reason}"] .bsl-drop')
    seq += 1
    wait_settled(page, ".bsl-rejections", seq)
    screenshot(page, "voila-import-flow-dropped")

    # Commit: nothing was written before this click; after it the import is on disk.
    assert read_imports(project) == []
    page.click(".bsl-rejections .bsl-commit")
    page.wait_for_selector('.bsl-commit-event[data-reason="dataset_import_run"]')
    imports = read_imports(project)
    assert len(imports) == 1 and imports[0]["shape"] == "classification"
    accepted = imports[0]["accepted"]
    assert f"Committed {accepted} rows" in page.locator(".bsl-committed").inner_text()
    events = project.events.list(stage="ingestion")
    assert list(events["reason_code"]) == ["dataset_import_run"]
    screenshot(page, "voila-import-flow-committed")
    assert log.errors == []


def test_dashboard_loads_without_console_errors(start_server, offline_page, rich_project):
    page, log = offline_page
    server = start_server("voila", REPO / "notebooks" / "dashboards" / "data.ipynb",
                          env={"BREWSLM_PROJECT": str(rich_project.root)})
    page.goto(server.url, wait_until="commit")  # Voila streams while cells run
    page.wait_for_selector(".bsl-timeline tr.bsl-row")
    page.wait_for_selector(".bsl-rejections tr.bsl-group")
    page.wait_for_selector(".bsl-cleaning .bsl-report")
    page.wait_for_selector("text=No training runs yet")
    body = page.locator("body").inner_text()
    assert "Imports" in body and "imp-" in body
    assert "No training runs yet" in body  # the runs section says how to get one
    assert "read_imports(project)" not in body  # code cells are hidden
    assert page.locator(".bsl-rejections .bsl-commit").count() == 0  # read-only report
    assert page.locator(".bsl-cleaning .bsl-start").count() == 0
    screenshot(page, "voila-dashboard")
    assert log.errors == [], log.errors
    assert any("cdn" in url for url in log.blocked)  # the offline routing did its job


def test_timeline_in_jupyterlab(tmp_path, start_server, offline_page, rich_project):
    page, log = offline_page
    nb = write_notebook(tmp_path / "lab" / "timeline.ipynb", [
        OPEN_PROJECT, "timeline = bw.EventTimeline(project)\ntimeline"])
    server = start_server("lab", nb, env={"BREWSLM_PROJECT": str(rich_project.root)})
    page.goto(server.url, wait_until="commit")  # Voila streams while cells run
    page.wait_for_selector(".jp-Notebook")
    page.wait_for_function(  # the status bar says the kernel is idle
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-Component')]"
        ".some(e => /Idle/.test(e.textContent))")
    page.locator(".jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_selector(".bsl-timeline tr.bsl-row", timeout=90_000)
    page.select_option(".bsl-timeline .bsl-filter-severity", "error")
    page.wait_for_function(
        "document.querySelectorAll('.bsl-timeline tr.bsl-row').length === 1")
    assert page.locator(".bsl-timeline tr.bsl-row .bsl-reason").inner_text() == "training_oom"
    page.fill(".bsl-timeline .bsl-sql", "SELECT count(*) AS n FROM run_events")
    page.click(".bsl-timeline .bsl-run-sql")
    wait_settled(page, ".bsl-timeline", 1)
    record_latency("timeline_sql_lab", [rtts(page, ".bsl-timeline")])
    assert page.locator(".bsl-timeline th").all_inner_texts() == ["n"]
    screenshot(page, "lab-timeline")


@pytest.mark.slow
def test_loss_chart_gains_points_while_training_runs(tmp_path, start_server, offline_page):
    from brewslm_core.mapping import commit

    project = Project.create(tmp_path / "train")
    commit(project, INTENTS, "classification")
    page, log = offline_page
    nb = write_notebook(tmp_path / "nb" / "loss.ipynb", [
        OPEN_PROJECT,
        # Training runs on a background thread; the kernel stays free for the chart's publisher.
        "import threading\n"
        "from brewslm_core.mapping.store import read_committed\n"
        "from brewslm_core.train.config import TrainConfig\n"
        "from brewslm_core.train.engine import train\n"
        "rows = list(read_committed(project))\n"
        "cfg = TrainConfig(task_profile='classification', max_steps=30, batch_size=8, threads=1)\n"
        "worker = threading.Thread(target=train, args=(project, cfg, rows[:300]),\n"
        "                          kwargs={'run_id': 'exp-live'}, daemon=True)\n"
        "worker.start()",
        "chart = bw.LossChart(project, 'exp-live', poll=0.3)\nchart",
    ])
    server = start_server("voila", nb, env={"BREWSLM_PROJECT": str(project.root)})
    page.goto(server.url, wait_until="commit")  # Voila streams while cells run
    page.wait_for_selector(".bsl-loss[data-points] .js-plotly-plot")
    seen, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        # the points plotly actually drew for the train-loss trace
        n = page.evaluate("() => { const gd = document.querySelector('.bsl-loss .js-plotly-plot');"
                          " const t = gd.data.find(d => d.name.endsWith('loss') &&"
                          " !d.name.endsWith('eval loss')); return t.x.length; }")
        if not seen or n != seen[-1]:
            seen.append(n)
        if n >= 30:
            break
        time.sleep(0.5)
    screenshot(page, "voila-loss-chart-live")
    growing = [n for n in seen if n > 0]
    assert len(growing) >= 3, seen  # the chart grew in several steps while training ran
    assert growing == sorted(growing) and growing[-1] == 30, seen
    assert log.errors == []


def kernels_of(server) -> int:
    import psutil

    children = psutil.Process(server.proc.pid).children(recursive=True)
    return sum(1 for c in children if "ipykernel" in " ".join(c.cmdline()))


def test_dashboard_without_a_project_says_how_to_start(start_server, offline_page):
    page, log = offline_page
    server = start_server("voila", REPO / "notebooks" / "dashboards" / "data.ipynb",
                          env={"BREWSLM_PROJECT": ""})
    page.goto(server.url, wait_until="commit")
    page.wait_for_selector("text=No project chosen")
    body = page.locator("body").inner_text()
    assert "make dashboard PROJECT=path/to/project" in body
    assert "There was an error" not in body and "Traceback" not in body
    screenshot(page, "voila-dashboard-no-project")
    assert log.errors == [], log.errors


def test_voila_culls_the_kernel_of_a_closed_page(start_server, offline_page, rich_project):
    """A page that goes away without saying so (no beforeunload) must not leave its kernel."""
    page, _log = offline_page
    dashboard = REPO / "notebooks" / "dashboards" / "data.ipynb"
    # The dashboard's own voila.json sets culling; short timings here to see it happen.
    server = start_server("voila", dashboard, env={"BREWSLM_PROJECT": str(rich_project.root)},
                          args=["--MappingKernelManager.cull_idle_timeout=4",
                                "--MappingKernelManager.cull_interval=2"])
    visit = page.context.new_page()
    visit.goto(server.url, wait_until="commit")
    visit.wait_for_selector(".bsl-timeline tr.bsl-row")
    assert kernels_of(server) == 1
    visit.close(run_before_unload=False)
    deadline = time.monotonic() + 90
    while kernels_of(server) and time.monotonic() < deadline:
        time.sleep(1)
    assert kernels_of(server) == 0, server.log()
    assert "Culling kernels with idle durations > 4 seconds" in server.log()

    # Without flags the dashboard folder's voila.json turns culling on (Voila's default is off).
    plain = start_server("voila", dashboard, env={"BREWSLM_PROJECT": str(rich_project.root)})
    page.goto(plain.url, wait_until="commit")
    page.wait_for_selector(".bsl-timeline tr.bsl-row")
    assert "Culling kernels with idle durations > 300 seconds" in plain.log(), plain.log()
