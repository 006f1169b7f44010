"""Tornado handlers over the same functions the notebooks and the CLI call.

Every error is a JSON body ``{"error": {"status": N, "message": "..."}}``. Work that can take a
while runs off the server's IO loop (a worker thread); long playbooks return a task id at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import coach, tasks
from ..common.known_projects import lookup, registered
from ..project import Project, ProjectError

PROJECT_ID = r"(?P<project_id>[^/]+)"
TASK_ID = re.compile(r"^[a-z_]+-\d{14}-[0-9a-f]{8}$")
MAX_EVENTS = 5000


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, list, dict)):
        return value.item()
    return value


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BaseHandler(APIHandler):
    def reply(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False, default=str))

    def fail(self, status: int, message: str) -> None:
        self.reply(status, {"error": {"status": status, "message": message}})

    def project(self, project_id: str) -> Project:
        root = lookup(project_id)
        if root is None:
            raise HttpError(404, f"no registered project with id {project_id}; "
                                 "GET /api/projects lists them")
        try:
            return Project.open(root)
        except ProjectError as exc:
            raise HttpError(404, str(exc)) from exc

    async def guarded(self, work: Any) -> None:
        try:
            status, body = await work
        except HttpError as exc:
            self.fail(exc.status, exc.message)
        else:
            self.reply(status, body)


class ProjectsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        entries = await asyncio.to_thread(registered)
        self.reply(200, {"projects": sorted(entries.values(), key=lambda e: e["name"])})


class CoachHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, project_id: str, stage: str) -> None:
        async def work() -> tuple[int, Any]:
            project = self.project(project_id)
            if stage not in coach.COACH_STAGES:
                raise HttpError(404, f"unknown coach stage {stage!r}; expected one of "
                                     f"{list(coach.COACH_STAGES)}")
            items = await asyncio.to_thread(coach.suggest, project, stage)
            return 200, [s.to_dict() for s in items]

        await self.guarded(work())


class EventsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, project_id: str) -> None:
        async def work() -> tuple[int, Any]:
            project = self.project(project_id)
            raw_limit = self.get_query_argument("limit", "500")
            try:
                limit = int(raw_limit)
            except ValueError:
                raise HttpError(400, f"limit must be an integer, got {raw_limit!r}") from None
            if not 1 <= limit <= MAX_EVENTS:
                raise HttpError(400, f"limit must be between 1 and {MAX_EVENTS}")
            args = {"stage": self.get_query_arguments("stage") or None,
                    "severity": self.get_query_arguments("severity") or None,
                    "run_id": self.get_query_argument("run_id", None) or None}
            try:
                frame = await asyncio.to_thread(project.events.list, limit=limit, **args)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from exc
            rows = [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
            return 200, {"events": rows}

        await self.guarded(work())


def _task_status(project: Project, task_id: str, cancel: bool = False) -> dict[str, Any]:
    if not TASK_ID.match(task_id):
        raise HttpError(404, f"{task_id!r} is not a task id")
    try:
        status = tasks.cancel(project, task_id) if cancel else tasks.status(project, task_id)
    except tasks.TaskError as exc:
        raise HttpError(404, str(exc)) from exc
    return status.to_dict()


class TaskHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self, project_id: str, task_id: str) -> None:
        async def work() -> tuple[int, Any]:
            project = self.project(project_id)
            return 200, await asyncio.to_thread(_task_status, project, task_id)

        await self.guarded(work())


class TaskCancelHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self, project_id: str, task_id: str) -> None:
        async def work() -> tuple[int, Any]:
            project = self.project(project_id)
            return 202, await asyncio.to_thread(_task_status, project, task_id, True)

        await self.guarded(work())


class ActionsHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self, project_id: str) -> None:
        async def work() -> tuple[int, Any]:
            project = self.project(project_id)
            try:
                body = json.loads(self.request.body or b"")
            except ValueError as exc:
                raise HttpError(400, f"the body is not JSON: {exc}") from exc
            if isinstance(body, dict) and isinstance(body.get("action"), dict):
                body = body["action"]  # {"action": {...}} or the action itself
            try:
                action = coach.Action.from_dict(body)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from exc
            try:
                result = await asyncio.to_thread(coach.execute, project, action)
            except (ValueError, LookupError) as exc:  # ActionError, bad params, no such job…
                raise HttpError(400, str(exc)) from exc
            return (202 if result.status == "started" else 200), result.to_dict()

        await self.guarded(work())


class NotFoundHandler(BaseHandler):
    """Anything else under /api/projects/: a JSON 404 (never Jupyter's HTML page)."""

    @tornado.web.authenticated
    def get(self, rest: str) -> None:
        self.fail(404, f"no route /api/projects/{rest}; see GET /api/projects")

    post = get


def routes(base_url: str) -> list[tuple[str, type]]:
    def at(path: str) -> str:
        return url_path_join(base_url, "api", "projects", path)

    return [
        (url_path_join(base_url, "api", "projects") + "/?", ProjectsHandler),
        (at(PROJECT_ID + r"/coach/(?P<stage>[^/]+)"), CoachHandler),
        (at(PROJECT_ID + r"/events"), EventsHandler),
        (at(PROJECT_ID + r"/tasks/(?P<task_id>[^/]+)/cancel"), TaskCancelHandler),
        (at(PROJECT_ID + r"/tasks/(?P<task_id>[^/]+)"), TaskHandler),
        (at(PROJECT_ID + r"/actions"), ActionsHandler),
        (at(r"(?P<rest>.*)"), NotFoundHandler),
    ]
