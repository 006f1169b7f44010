"""CleaningPanel: start a clean as a background task, follow its progress, then show the report."""

from __future__ import annotations

import threading
from typing import Any

import traitlets as t

from ._base import BrewWidget, static_text


class CleaningPanel(BrewWidget):
    """Start ``brewslm_core.clean.start_clean`` and poll ``brewslm_core.tasks.status``.

    One publisher thread polls the task and updates the traits under ``hold_sync`` (never
    ``with out:`` from a thread), so the kernel stays free while the clean runs.
    """

    _esm = static_text("common.js", "cleaning.js")

    task_id = t.Unicode("").tag(sync=True)
    state = t.Unicode("").tag(sync=True)  # "", queued, running, succeeded, failed, cancelled
    done = t.Int(0).tag(sync=True)
    total = t.Int(0).tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    report = t.Dict().tag(sync=True)
    removed_by_reason = t.Dict().tag(sync=True)
    pii_by_type = t.Dict().tag(sync=True)
    quality_hist = t.Dict().tag(sync=True)  # {"edges": [...], "counts": [...]}
    readonly = t.Bool(False).tag(sync=True)  # dashboards: the last report, no start button

    def __init__(self, project: Any, config: Any = None, *, poll: float = 0.2,
                 readonly: bool = False, **kwargs: Any):
        super().__init__(readonly=readonly, **kwargs)
        self.project = project
        self.config = config
        self.poll = poll
        self._publisher: threading.Thread | None = None
        self._stop = threading.Event()
        self._guarded(self._load_last_report)

    # ---- Python API -----------------------------------------------------------------
    def start(self, config: Any = None) -> str:
        """Start a clean in the background; returns its task id at once."""
        self._start(config if config is not None else self.config)
        return self.task_id

    def wait(self, timeout: float | None = None) -> str:
        """Block until the publisher has seen the task finish; returns the final state."""
        if self._publisher is not None:
            self._publisher.join(timeout)
        return self.state

    def cancel(self) -> None:
        from brewslm_core import tasks

        if self.task_id:
            tasks.cancel(self.project, self.task_id)

    def close(self) -> None:
        self._stop.set()
        super().close()

    # ---- engine calls ---------------------------------------------------------------
    def _start(self, config: Any) -> None:
        from brewslm_core.clean import start_clean

        if self.readonly:
            raise RuntimeError("this panel is a read-only report; start a clean from a notebook")
        if self._publisher is not None and self._publisher.is_alive():
            raise RuntimeError(f"a clean is already running ({self.task_id}); wait or cancel it")
        task_id = start_clean(self.project, config)
        with self.hold_sync():
            self.task_id = task_id
            self.state, self.done, self.total, self.message = "queued", 0, 0, ""
        self._stop.clear()
        self._publisher = threading.Thread(
            target=self._publish, name=f"brewslm-clean-{task_id}", daemon=True
        )
        self._publisher.start()

    def _publish(self) -> None:
        """The one publisher: poll the task file, push progress, then the report."""
        from brewslm_core import tasks

        while not self._stop.is_set():
            try:
                status = tasks.status(self.project, self.task_id)
            except Exception as exc:  # show it; a panel must never die silently
                self.error = f"{type(exc).__name__}: {exc}"
                return
            progress = status.progress or {}
            with self.hold_sync():
                self.state = status.state
                self.done = int(progress.get("done") or 0)
                self.total = int(progress.get("total") or 0)
                self.message = str(progress.get("message") or "")
                if status.done:
                    if status.error:
                        self.error = f"{status.error.get('reason_code') or status.state}: " + str(
                            status.error.get("message", "")
                        )
                    self._show_report(status.result if isinstance(status.result, dict) else None)
            if status.done:
                return
            self._stop.wait(self.poll)

    def _load_last_report(self) -> None:
        from brewslm_core.clean import load_report

        report = load_report(self.project)
        if report is not None:
            with self.hold_sync():
                self._show_report(report.to_dict())
                self.state = self.state or "succeeded"

    def _show_report(self, report: dict[str, Any] | None) -> None:
        if report is None:  # a failed or cancelled task: show the last report if there is one
            from brewslm_core.clean import load_report

            last = load_report(self.project)
            report = last.to_dict() if last is not None else {}
        self.report = report
        self.removed_by_reason = dict(report.get("removed_by_reason") or {})
        self.pii_by_type = dict(report.get("pii_by_type") or {})
        hist = report.get("quality_histogram") or {}
        self.quality_hist = {"edges": list(hist.get("edges", [])),
                             "counts": list(hist.get("counts", []))}

    # ---- front-end actions ----------------------------------------------------------
    def _on_start(self, _content: dict) -> None:
        self._start(self.config)

    def _on_cancel(self, _content: dict) -> None:
        self.cancel()
