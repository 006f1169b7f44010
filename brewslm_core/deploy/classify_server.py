"""A small OpenAI-style HTTP server for encoder runs (classification, safety, …) over ``predict``.

    python -m brewslm_core.deploy.classify_server --project P --run exp-… --port 8001

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/classify`` with
``{"model": NAME, "input": ["text", …]}`` → ``{"object": "list", "model": NAME, "data":
[{"index": 0, "label": …, "scores": {…}}, …]}`` (each item is the run's natural prediction).
One request at a time (a lock around the model); stdlib ``http.server``, bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_INPUTS = 256


def make_handler(loaded: Any, name: str) -> type[BaseHTTPRequestHandler]:
    from ..predict import PredictInputError, predict_loaded

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str) -> None:
            self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/v1/models":
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": name,
                                "object": "model",
                                "owned_by": "brewslm",
                                "task_profile": loaded.task_profile,
                            }
                        ],
                    },
                )
            else:
                self._error(404, f"no route {self.path}; use /v1/models or POST /v1/classify")

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/classify":
                self._error(404, f"no route {self.path}; POST /v1/classify")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except json.JSONDecodeError as exc:
                self._error(400, f"body is not JSON: {exc}")
                return
            inputs = body.get("input")
            if isinstance(inputs, str):
                inputs = [inputs]
            if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_INPUTS:
                self._error(400, f'"input" must be a string or a list of 1..{MAX_INPUTS} inputs')
                return
            if body.get("model") not in (None, name):
                self._error(
                    404, f"model {body.get('model')!r} is not served here; this server serves {name!r}"
                )
                return
            try:
                with lock:
                    preds = predict_loaded(loaded, inputs)
            except PredictInputError as exc:
                self._error(400, str(exc))
                return
            self._send(
                200,
                {"object": "list", "model": name, "data": [{"index": i, **p} for i, p in enumerate(preds)]},
            )

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep logs short
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--served-model-name", default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from ..predict import load_run
    from ..project import Project

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    loaded = load_run(Project.open(args.project), args.run)
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(loaded, args.served_model_name or args.run)
    )
    print(f"serving {args.run} ({loaded.task_profile}) on http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
