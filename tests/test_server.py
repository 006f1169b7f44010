"""The REST extension through a real Jupyter server (pytest-jupyter): routes, auth, JSON errors,
project ids from the registry only, long actions answered with a task id at once."""

from __future__ import annotations

import csv
import json

import pytest
from tornado.httpclient import HTTPClientError

from brewslm_core import Project, tasks
from brewslm_core.mapping import commit

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture()
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"brewslm_core.server": True}}}


@pytest.fixture()
def registered(tmp_path, monkeypatch, shared_data) -> Project:
    monkeypatch.setenv("BREWSLM_CONFIG_DIR", str(tmp_path / "config"))
    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r, _ in zip(csv.DictReader(fh), range(60), strict=False)]
    src = tmp_path / "bank.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "category"])
        w.writeheader()
        w.writerows(rows)
    project = Project.create(tmp_path / "proj")
    commit(project, f"csv:{src}", "classification", {"text": "text", "label": "category"})
    return project


async def fail(fetch, *parts, **kw) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await fetch(*parts, **kw)
    body = info.value.response.body
    return info.value.code, (json.loads(body) if body else {})


async def test_projects_and_coach_routes(jp_fetch, registered) -> None:
    listed = json.loads((await jp_fetch("api", "projects")).body)["projects"]
    assert [p["root"] for p in listed] == [str(registered.root)]
    pid = listed[0]["id"]
    assert pid == str(registered.id)

    response = await jp_fetch("api", "projects", pid, "coach", "gold_set")
    assert response.code == 200
    items = json.loads(response.body)
    assert items[0]["severity"] == "critical" and items[0]["title"] == "Your gold set has 0 rows"
    assert set(items[0]) == {"severity", "title", "body", "action"}
    data = json.loads((await jp_fetch("api", "projects", pid, "coach", "data")).body)
    assert data[0]["title"].startswith("60 rows committed")


async def test_errors_are_json_with_the_right_status(jp_fetch, registered) -> None:
    pid = str(registered.id)
    code, body = await fail(jp_fetch, "api", "projects", pid, "coach", "deploy")
    assert code == 404 and "unknown coach stage 'deploy'" in body["error"]["message"]
    code, body = await fail(jp_fetch, "api", "projects", "12345", "coach", "data")
    assert code == 404 and "no registered project with id 12345" in body["error"]["message"]
    # a path is never taken from the request
    code, body = await fail(jp_fetch, "api", "projects", str(registered.root), "events")
    assert code == 404
    code, body = await fail(jp_fetch, "api", "projects", pid, "actions", method="POST",
                            body="{not json")
    assert code == 400 and "not JSON" in body["error"]["message"]
    code, body = await fail(jp_fetch, "api", "projects", pid, "actions", method="POST",
                            body=json.dumps({"kind": "explode", "label": "x", "params": {}}))
    assert code == 400 and "unknown action kind 'explode'" in body["error"]["message"]
    code, body = await fail(jp_fetch, "api", "projects", pid, "actions", method="POST",
                            body=json.dumps({"kind": "run_playbook", "params": {"playbook": "nope"}}))
    assert code == 400 and "unknown playbook" in body["error"]["message"]
    code, body = await fail(jp_fetch, "api", "projects", pid, "events", params={"limit": "x"})
    assert code == 400
    code, body = await fail(jp_fetch, "api", "projects", pid, "events", params={"stage": "trainin"})
    assert code == 400 and "did you mean 'training'" in body["error"]["message"]
    code, body = await fail(jp_fetch, "api", "projects", pid, "tasks", "..%2F..%2Fbrewslm")
    assert code == 404


async def test_no_token_is_refused(jp_fetch, registered) -> None:
    for parts, method, body in ((("api", "projects"), "GET", None),
                                (("api", "projects", str(registered.id), "coach", "data"), "GET", None),
                                (("api", "projects", str(registered.id), "actions"), "POST", "{}")):
        code, _ = await fail(jp_fetch, *parts, method=method, body=body,
                             headers={"Authorization": "token wrong"})
        assert code == 403


async def test_events_route_filters(jp_fetch, registered) -> None:
    registered.events.append(stage="training", severity="error", reason_code="training_oom",
                             run_id="exp-9", payload={"step": 2})
    pid = str(registered.id)
    rows = json.loads((await jp_fetch("api", "projects", pid, "events",
                                      params={"stage": "training"})).body)["events"]
    assert [(r["reason_code"], r["run_id"], r["payload"]) for r in rows] == [
        ("training_oom", "exp-9", {"step": 2})]
    rows = json.loads((await jp_fetch("api", "projects", pid, "events",
                                      params={"limit": "1"})).body)["events"]
    assert len(rows) == 1 and rows[0]["stage"] == "training"


async def test_long_action_returns_a_task_id_then_poll_and_cancel(jp_fetch, registered) -> None:
    pid = str(registered.id)
    suggestion = json.loads((await jp_fetch("api", "projects", pid, "coach", "cleaning")).body)[0]
    assert suggestion["action"]["params"]["playbook"] == "clean"
    response = await jp_fetch("api", "projects", pid, "actions", method="POST",
                              body=json.dumps({"action": suggestion["action"]}))
    assert response.code == 202
    result = json.loads(response.body)
    assert result["status"] == "started" and result["task_id"].startswith("clean-")
    task_id = result["task_id"]
    polled = json.loads((await jp_fetch("api", "projects", pid, "tasks", task_id)).body)
    assert polled["task_id"] == task_id and polled["state"] in tasks.STATES
    cancelled = await jp_fetch("api", "projects", pid, "tasks", task_id, "cancel", method="POST",
                               body="")
    assert cancelled.code == 202
    final = tasks.wait(registered, task_id, timeout=120)
    assert final.state in ("succeeded", "cancelled")  # a 60-row clean may finish first
    code, body = await fail(jp_fetch, "api", "projects", pid, "tasks", "clean-20260101000000-deadbeef")
    assert code == 404 and body["error"]["status"] == 404


async def test_navigate_action_is_done_inline(jp_fetch, registered) -> None:
    response = await jp_fetch("api", "projects", str(registered.id), "actions", method="POST",
                              body=json.dumps({"kind": "navigate", "label": "go",
                                               "params": {"target": "clean"}}))
    assert response.code == 200
    assert json.loads(response.body) == {"kind": "navigate", "status": "done", "task_id": None,
                                         "result": {"target": "clean"}}


def test_extension_is_enabled_by_the_installed_config() -> None:
    import tomllib
    from pathlib import Path

    from brewslm_core import server

    repo = Path(__file__).resolve().parents[1]
    data_files = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    (config,) = data_files["etc/jupyter/jupyter_server_config.d"]
    enabled = json.loads((repo / config).read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"brewslm_core.server": True}
    assert server._jupyter_server_extension_points() == [{"module": "brewslm_core.server"}]


def test_registry_registers_on_create_and_open_and_forgets_gone_dirs(tmp_path, monkeypatch) -> None:
    import shutil

    from brewslm_core.common.known_projects import lookup, registered, registry_path

    monkeypatch.setenv("BREWSLM_CONFIG_DIR", str(tmp_path / "config"))
    a = Project.create(tmp_path / "a")
    b = Project.create(tmp_path / "b")
    assert lookup(str(a.id)) == a.root and set(registered()) == {str(a.id), str(b.id)}
    registry_path().unlink()
    Project.open(a.root)  # opening registers too
    assert set(registered()) == {str(a.id)}
    Project.open(b.root)
    shutil.rmtree(b.root)
    assert set(registered()) == {str(a.id)} and lookup(str(b.id)) is None
    Project.open(a.root)  # the next write drops the gone directory from the file
    assert set(json.loads(registry_path().read_text())["projects"]) == {str(a.id)}
