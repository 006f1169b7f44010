"""LossChart: train/eval loss and learning rate per step from runs/<run_id>/trace.jsonl, live."""

from __future__ import annotations

import json
import threading
from typing import Any


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
        for raw in chunk[:end].splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a corrupt line never stops the chart
            if "eval_loss" in line:
                self.eval["step"].append(line.get("step"))
                self.eval["eval_loss"].append(line["eval_loss"])
                grew = True
            elif "loss" in line:
                self.train["step"].append(line.get("step"))
                self.train["loss"].append(line["loss"])
                self.train["lr"].append(line.get("lr"))
                grew = True
        return grew


class LossChart:
    """A plotly ``FigureWidget`` (an anywidget in plotly 7) over one or more runs' traces.

    Train loss (solid), eval loss (markers) and learning rate (dotted, right axis) per step,
    one colour per run. ``live=True`` starts one publisher thread that tails the traces and
    updates the figure in a batch under ``hold_sync``; the kernel stays free.
    """

    def __init__(
        self,
        project: Any,
        run_ids: str | list[str],
        *,
        live: bool = True,
        poll: float = 0.5,
    ) -> None:
        import plotly.graph_objects as go

        self.project = project
        self.run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        self.poll = poll
        self._tails = {r: _TraceTail(project.run_dir(r) / "trace.jsonl") for r in self.run_ids}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        palette = ["#1a73e8", "#d93025", "#188038", "#e37400", "#9334e6", "#12b5cb"]
        traces = []
        for i, run in enumerate(self.run_ids):
            colour = palette[i % len(palette)]
            traces += [
                go.Scatter(name=f"{run} train loss", x=[], y=[], mode="lines",
                           line={"color": colour}, meta={"run": run, "series": "loss"}),
                go.Scatter(name=f"{run} eval loss", x=[], y=[], mode="lines+markers",
                           line={"color": colour, "dash": "dash"},
                           meta={"run": run, "series": "eval_loss"}),
                go.Scatter(name=f"{run} lr", x=[], y=[], mode="lines", yaxis="y2",
                           line={"color": colour, "dash": "dot", "width": 1},
                           meta={"run": run, "series": "lr"}),
            ]
        self.figure = go.FigureWidget(
            data=traces,
            layout={
                "title": {"text": "Loss per step"},
                "xaxis": {"title": {"text": "step"}},
                "yaxis": {"title": {"text": "loss"}},
                "yaxis2": {"title": {"text": "learning rate"}, "overlaying": "y", "side": "right",
                           "showgrid": False},
                "legend": {"orientation": "h"},
                "height": 380,
                "margin": {"l": 50, "r": 60, "t": 40, "b": 40},
            },
        )
        self.refresh()
        if live:
            self.start()

    # ---- Python API -----------------------------------------------------------------
    def refresh(self) -> bool:
        """Read new trace lines of every run into the figure; True when points were added."""
        with self._lock:
            grew = [r for r, tail in self._tails.items() if tail.read()]
            if not grew:
                return False
            with self.figure.hold_sync(), self.figure.batch_update():
                for trace in self.figure.data:
                    run, series = trace.meta["run"], trace.meta["series"]
                    if run not in grew:
                        continue
                    tail = self._tails[run]
                    part = tail.eval if series == "eval_loss" else tail.train
                    trace.x = list(part["step"])
                    trace.y = list(part[series])
            return True

    def points(self, run_id: str) -> dict[str, int]:
        """How many points each series of a run holds (what the chart shows)."""
        tail = self._tails[run_id]
        return {"loss": len(tail.train["loss"]), "eval_loss": len(tail.eval["eval_loss"]),
                "lr": sum(v is not None for v in tail.train["lr"])}

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
        self.figure.close()

    def _publish(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.refresh()
            except Exception:  # a broken trace line must not kill live updates
                continue

    # ---- display: the figure is the widget ------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.figure._repr_mimebundle_(**kwargs)
