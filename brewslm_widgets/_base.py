"""Shared base for BrewSLM widgets: static files, the click dispatcher, JSON-safe tables.

A widget only syncs traits and forwards clicks; every decision is made by brewslm_core.
Front ends send ``{"type": "<action>", ...}`` messages; ``_on_<action>`` methods handle them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("brewslm_widgets")


def static_text(*names: str) -> str:
    """Files in ``static/`` joined into one text. Read once at import: no CDN, no file watcher.

    A widget's ES module is ``common.js`` (small DOM helpers) followed by its own file.
    """
    return "\n".join((STATIC / name).read_text(encoding="utf-8") for name in names)


def frame_to_table(df: Any) -> tuple[list[str], list[list[Any]]]:
    """A pandas DataFrame as (columns, rows) of plain JSON values (timestamps as ISO text)."""
    if df is None or len(df.columns) == 0:
        return [], []
    # pandas' own JSON writer knows every dtype (timestamps, NA, numpy scalars, nested objects).
    data = json.loads(df.to_json(orient="split", date_format="iso", index=False, default_handler=str))
    return [str(c) for c in data["columns"]], data["data"]


def as_json_value(value: Any) -> Any:
    """Payloads arrive as dicts or as JSON text (DuckDB's JSON type); give back plain data."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class BrewWidget(anywidget.AnyWidget):
    """Base: shared stylesheet, an ``error`` line, a ``busy`` flag, and the click dispatcher."""

    _css = static_text("brewslm.css")

    error = t.Unicode("").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    # Seconds the kernel spent handling the last front-end action (engine time, no transport).
    last_action = t.Dict({}).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._dispatch)

    def _guarded(self, fn: Any, *args: Any, reraise: bool = True) -> None:
        """Run an engine call; its error shows in the widget and (from Python) reaches the caller.

        A notebook cell that calls a widget method must fail when the engine refuses, so the
        error is raised again; only a front-end click (``reraise=False``) has nobody to raise to.
        """
        self.busy = True
        try:
            self.error = ""
            fn(*args)
        except Exception as exc:  # surface every engine error in the widget, never lose it
            log.debug("widget call failed", exc_info=True)
            self.error = f"{type(exc).__name__}: {exc}"
            if reraise:
                raise
        finally:
            self.busy = False

    def _dispatch(self, _widget: Any, content: Any, _buffers: Any) -> None:
        action = content.get("type") if isinstance(content, dict) else None
        handler = getattr(self, f"_on_{action}", None) if isinstance(action, str) else None
        if handler is None:
            self.error = f"unknown action {action!r} from the front end"
            return
        started = time.perf_counter()
        try:
            self._guarded(handler, content, reraise=False)
        finally:
            self.last_action = {
                "type": action,
                "seq": content.get("seq"),
                "kernel_ms": round((time.perf_counter() - started) * 1000, 2),
            }
