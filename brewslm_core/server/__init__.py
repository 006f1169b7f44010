"""The BrewSLM REST API as a Jupyter-server extension (so it serves inside JupyterLab and Voila).

Enabled on install by ``etc/jupyter/jupyter_server_config.d/brewslm_core.json``; by hand with
``jupyter server extension enable brewslm_core.server``. Routes (Jupyter's auth applies):

    GET  /api/projects                                registered projects
    GET  /api/projects/{id}/coach/{stage}             Coach suggestions of one stage
    GET  /api/projects/{id}/events?stage=&severity=&run_id=&limit=
    GET  /api/projects/{id}/tasks/{task_id}           a background task's status
    POST /api/projects/{id}/tasks/{task_id}/cancel
    POST /api/projects/{id}/actions                   execute a Coach action ({kind, label, params})

A project id is looked up in the user's project registry; a request never names a path.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "brewslm_core.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import routes

    web_app = serverapp.web_app
    base = web_app.settings.get("base_url", "/")
    web_app.add_handlers(".*$", routes(base))
    serverapp.log.info("brewslm REST API loaded under %sapi/projects", base)


# jupyter_server < 2 looked for this name
load_jupyter_server_extension = _load_jupyter_server_extension
