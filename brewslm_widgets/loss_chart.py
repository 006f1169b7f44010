"""LossChart: train/eval loss and learning rate per step from runs/<run_id>/trace.jsonl, live."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import traitlets as t

from brewslm_core.train.trace import parse_lines, split_of

from ._base import BrewWidget, static_text


class _TraceTail:
    """Reads a trace.jsonl incrementally; a half-written last line waits for the next read."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.train: dict[str, list[Any]] = {"step": [], "loss": [], "lr": []}
        self.eval: dict[str, list[Any]] = {"step": [], "eval_loss": []}

    def read(self) -> bool:
        if not self.path.is_file():
            return False
        if self.path.stat().st_size < self.offset:
            self._reset()  # a resumed run cut the trace back to its checkpoint: re-read it
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # only complete lines: the writer may be mid-line
        if end == 0:
            return False
        self.offset += end
        grew = False
        for line in parse_lines(chunk[:end]):  # train.trace's parser: a corrupt line is skipped
            if split_of(line) == "eval" and "eval_loss" in line:
                self.eval["step"].append(line.get("step"))
                self.eval["eval_loss"].append(line["eval_loss"])
                grew = True
            elif split_of(line) == "train" and "loss" in line:
                self.train["step"].append(line.get("step"))
                self.train["loss"].append(line["loss"])
                self.train["lr"].append(line.get("lr"))
                grew = True
        return grew


@lru_cache(maxsize=1)
def plotly_source() -> str:
    """plotly.js as bundled inside the installed plotly package (offline, no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


class LossChart(BrewWidget):
    """Train loss (solid), eval loss (dashed) and learning rate (dotted, right axis) per step.

    One colour per run, so several runs overlay. The view draws with plotly.js from the plotly
    package, carried in the widget's own state (``_plotly_js``): it arrives with the widget, so
    the chart draws while the kernel is busy (Run All blocks the next cell in ``worker.join()``;
    a request to the kernel would wait until training ends). The ES module stays small, so
    anywidget's model initialisation is not slowed by it. ``live=True`` starts one publisher
    thread that tails each run's trace.jsonl and updates ``series`` under ``hold_sync``;
    training itself never runs on the kernel's thread.
    """

    _esm = static_text("common.js", "loss_chart.js")

    run_ids = t.List(t.Unicode()).tag(sync=True)
    # one entry per (run, series): {"run", "series": loss|eval_loss|lr, "x": [...], "y": [...]}
    series = t.List(t.Dict()).tag(sync=True)
    title = t.Unicode("Loss per step").tag(sync=True)
    # plotly.min.js from the installed plotly package; a view uses window.Plotly when present.
    _plotly_js = t.Unicode("").tag(sync=True)

    def __init__(self, project: Any, run_ids: str | list[str], *, live: bool = True,
                 poll: float = 0.5, **kwargs: Any) -> None:
        runs = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        super().__init__(run_ids=runs, _plotly_js=plotly_source(), **kwargs)
        self.project = project
        self.poll = poll
        self._tails = {r: _TraceTail(project.run_dir(r) / "trace.jsonl") for r in runs}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        self.refresh()
        if live:
            self.start()

    # ---- Python API -----------------------------------------------------------------
    def refresh(self) -> bool:
        """Read new trace lines of every run into the chart; True when points were added."""
        with self._lock:
            grew = [r for r, tail in self._tails.items() if tail.read()]
            if grew or not self.series:
                with self.hold_sync():
                    self.series = self._series()
            return bool(grew)

    def _series(self) -> list[dict[str, Any]]:
        out = []
        for run, tail in self._tails.items():
            out.append({"run": run, "series": "loss", "x": list(tail.train["step"]),
                        "y": list(tail.train["loss"])})
            out.append({"run": run, "series": "eval_loss", "x": list(tail.eval["step"]),
                        "y": list(tail.eval["eval_loss"])})
            out.append({"run": run, "series": "lr", "x": list(tail.train["step"]),
                        "y": list(tail.train["lr"])})
        return out

    def points(self, run_id: str) -> dict[str, int]:
        """How many points each series of a run holds (what the chart shows)."""
        shown = {(s["run"], s["series"]): s for s in self.series}
        return {name: sum(v is not None for v in shown[(run_id, name)]["y"])
                for name in ("loss", "eval_loss", "lr")}

    def start(self) -> None:
        """Start the one publisher thread (idempotent)."""
        if self._publisher is not None and self._publisher.is_alive():
            return
        self._stop.clear()
        self._publisher = threading.Thread(target=self._publish, name="brewslm-loss-chart",
                                           daemon=True)
        self._publisher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=5)

    def close(self) -> None:
        self.stop()
        super().close()

    def _publish(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh()
            except Exception as exc:  # keep following the run; say what went wrong
                self.error = f"{type(exc).__name__}: {exc}"
