"""Widget overhead: kernel-side cost of a widget action vs the bare engine call it wraps.

    python -m benchmarks.bench_widgets [--rows N] [--repeat R]

Baselines are measured in the same run: ``dry_run`` vs a RejectionTable bulk-drop (dry run +
trait serialisation), ``events.list`` vs an EventTimeline refresh, and a LossChart refresh
over an N-step trace vs reading the same trace with ``json.loads``. Printed as ratios, with
absolute medians and peak RSS. Browser round trips are measured by tests/browser.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from .common import peak_rss_mb


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _row(name: str, base_ms: float, widget_ms: float) -> None:
    print(f"{name:34s} engine {base_ms:9.2f} ms   widget {widget_ms:9.2f} ms   "
          f"ratio {widget_ms / base_ms:6.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000, help="events and trace steps")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    from brewslm_core import Project
    from brewslm_core.mapping import dry_run
    from brewslm_widgets import EventTimeline, IntrospectionPicker, LossChart, RejectionTable

    locator = str(files("brewslm_core") / "data" / "brew_intents.csv")
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench")
        picker = IntrospectionPicker(locator, project=project)
        picker.select("classification")
        mapping = picker.mapping
        table = RejectionTable(project, locator, mapping)
        reason = table.groups[0]["reason"]

        def engine_drop() -> None:
            dry_run(locator, mapping.shape, mapping.field_map, mapping.options,
                    drop_reasons=(reason,), project=project)

        def widget_drop() -> None:
            table._handle_custom_msg({"type": "drop", "reason": reason}, [])
            table._handle_custom_msg({"type": "undrop", "reason": reason}, [])

        base = _median_ms(engine_drop, args.repeat)
        _row("rejection drop+undrop (2 dry runs)", 2 * base, _median_ms(widget_drop, args.repeat))

        for i in range(args.rows):
            project.events.append(stage="training", severity="info", summary=f"step {i}",
                                  payload={"i": i}, run_id="exp-bench")
        timeline = EventTimeline(project, limit=args.rows)
        _row(f"timeline refresh ({args.rows} events)",
             _median_ms(lambda: project.events.list(limit=args.rows), args.repeat),
             _median_ms(lambda: timeline._handle_custom_msg({"type": "refresh"}, []),
                        args.repeat))

        trace = project.run_dir("exp-bench") / "trace.jsonl"
        trace.parent.mkdir(parents=True, exist_ok=True)
        with open(trace, "w", encoding="utf-8") as fh:
            for step in range(1, args.rows + 1):
                fh.write(json.dumps({"step": step, "loss": 1 / step, "lr": 1e-4}) + "\n")

        def bare_read() -> None:
            [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]

        def chart_read() -> None:
            LossChart(project, "exp-bench", live=False).close()

        _row(f"loss chart load ({args.rows} steps)", _median_ms(bare_read, args.repeat),
             _median_ms(chart_read, args.repeat))
        # plotly.js travels in the chart's state (the view must draw while the kernel is busy):
        # the cost of that, against reading the bundle from the plotly package.
        from brewslm_widgets.loss_chart import plotly_source

        source = plotly_source()
        chart = LossChart(project, "exp-bench", live=False)
        state_mb = len(json.dumps(chart.get_state())) / 1e6
        chart.close()
        print(f"loss chart state {state_mb:.1f} MB (plotly.js {len(source) / 1e6:.1f} MB of it)")
        _row("loss chart state serialisation", _median_ms(lambda: json.dumps(source), args.repeat),
             _median_ms(lambda: json.dumps(LossChart(project, "exp-bench", live=False).get_state()),
                        args.repeat))

        from brewslm_widgets.runs import RunsBoard, run_rows

        board = RunsBoard(project, auto=False)
        _row("runs board refresh (1 run, unchanged)", _median_ms(lambda: run_rows(project), args.repeat),
             _median_ms(board.refresh, args.repeat))
        board.close()
    peak = peak_rss_mb()
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
