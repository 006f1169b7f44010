"""A 2-step training probe through the real engine: the plan's seconds/step is measured.

The probe trains on a few manifest train rows (spread over the split so every label can
appear) into ``runs/<run_id>/probe``. The engine records every run with one RunEvent; the
probe's says it is a probe (summary "preflight probe: …", payload kind "probe", run id
``<run_id>/probe``), so no timeline reads it as a finished training run; the plan names it. Its
weights are thrown away; its plan.json and trace.jsonl stay as evidence of the measurement.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..contracts.prepare import Manifest
    from ..project import Project
    from ..train import TrainConfig

PROBE_STEPS = 2
PROBE_SUFFIX = "probe"


def probe_run_id(run_id: str) -> str:
    return f"{run_id}/{PROBE_SUFFIX}"


def sample_train_rows(project: Project, manifest: Manifest, n: int) -> list[dict[str, Any]]:
    """``n`` rows evenly spaced over the train split (prepare keeps source order, which is
    often sorted by label: the first rows alone might hold a single class)."""
    total = int(manifest.counts.get("train", 0))
    stride = max(1, total // max(n, 1))
    out = []
    for i, row in enumerate(manifest.iter_split(project, "train")):
        if i % stride == 0:
            out.append(row)
            if len(out) == n:
                break
    return out


def run_probe(project: Project, manifest: Manifest, config: TrainConfig, run_id: str
              ) -> dict[str, Any]:
    """Train PROBE_STEPS optimizer steps with the planned batch; return the measurement."""
    from ..train import read_trace, train

    rows = sample_train_rows(project, manifest, config.batch_size * config.grad_accum * PROBE_STEPS)
    probe_cfg = replace(
        config,
        max_steps=PROBE_STEPS,
        epochs=max(config.epochs, PROBE_STEPS),  # a tiny split still yields two steps
        checkpoint_every=0,
        eval_every=0,
    )
    pid = probe_run_id(run_id)
    result = train(project, probe_cfg, rows, None, run_id=pid, probe=True)
    run_dir = project.run_dir(pid)
    out: dict[str, Any] = {
        "run_id": pid,
        "status": result.status,
        "rows": len(rows),
        "steps": result.steps,
        "reason_code": result.reason_code,
        "error": result.error,
        "seconds_per_step": None,
        "step_seconds": [],
        "real_tokens_per_s": round(result.real_tokens_per_s, 1),
        "wall_seconds": round(result.seconds, 2),
        "trace": (run_dir / "trace.jsonl").relative_to(project.root).as_posix(),
    }
    trace_path = run_dir / "trace.jsonl"
    steps = read_trace(trace_path, "train") if trace_path.is_file() else []
    seconds = [s["real_tokens"] / s["tokens_per_s"] for s in steps if s.get("tokens_per_s")]
    if seconds:
        out["step_seconds"] = [round(s, 4) for s in seconds]
        # the first step pays one-time costs (kernel selection, optimizer state allocation);
        # the last one is what every later step costs
        out["seconds_per_step"] = round(seconds[-1], 4)
    for heavy in ("adapter", "checkpoints"):
        shutil.rmtree(run_dir / heavy, ignore_errors=True)
    return out
