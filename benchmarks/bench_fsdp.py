"""Two CPU ranks over gloo: FSDP (sharded blocks) against DDP arithmetic (whole copies).

    python -m benchmarks.bench_fsdp                    # MiniLM full fine-tuning, 6 steps
    python -m benchmarks.bench_fsdp --steps 10 --method lora --batch 16

Both layouts start through `accelerate launch` with the plan's config file, on the same prepared
banking77 project, config and seed. Printed: seconds per step (median, first step left out: it
holds the lazy set-up), real tokens/s and each rank's peak RSS (sampled every 50 ms from the
launcher's child processes), with FSDP as a ratio of the DDP run measured in the same run, and
the largest per-tensor gap between the two runs' final weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def make_project(root: Path, rows: int):
    from brewslm_core import Project
    from brewslm_core.prepare import prepare
    from tests.test_preflight import banking, commit

    project = Project.create(root / "proj")
    commit(project, "b1", "classification", banking(SHARED, rows))
    prepare(project)
    return project


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(project, run_id: str, fsdp: bool, sets: list[str]) -> dict:
    import psutil

    from brewslm_core.preflight.launch import accelerate_config, config_yaml, launcher

    runtime = {"processes": 2, "main_process_port": free_port(), "fsdp": fsdp}
    layout = {"kind": "fsdp" if fsdp else "multi-cpu", "device": "cpu", "processes": 2,
              "machines": 1, "threads_per_process": 1}
    config = project.root / f"accelerate-{run_id}.yaml"
    config.write_text(config_yaml(accelerate_config(layout, "fp32", runtime)), encoding="utf-8")
    env, argv = launcher(layout, str(config), runtime)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *argv[2:], "-m", "brewslm_core.cli",
           "train", "run", str(project.root), "--resume", run_id, "--json"]
    for item in [*sets, *(["fsdp=true"] if fsdp else [])]:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    parent = psutil.Process(proc.pid)
    started = time.perf_counter()
    while proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                try:
                    peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{run_id} failed:\n{out[-2000:]}\n{err[-2000:]}")
    from brewslm_core.train import read_trace

    steps = read_trace(project.run_dir(run_id) / "trace.jsonl", "train")
    later = steps[1:] or steps
    per_step = statistics.median(
        s["real_tokens"] / s["tokens_per_s"] for s in later if s.get("tokens_per_s")
    )
    # the two ranks are the launcher's biggest children (the launcher itself is small)
    ranks = sorted(peaks.values(), reverse=True)[:2]
    return {
        "wall_s": time.perf_counter() - started,
        "s_per_step": per_step,
        "tokens_per_s": sum(s["real_tokens"] for s in later) / (per_step * len(later)),
        "peak_rss_mb": [round(r / 2**20) for r in ranks],
        "adapter": project.run_dir(run_id) / "adapter",
    }


def weight_gap(a: Path, b: Path) -> float:
    import torch
    from safetensors.torch import load_file

    worst = 0.0
    for f in sorted(a.glob("*.safetensors")):
        left, right = load_file(str(f)), load_file(str(b / f.name))
        for k, v in left.items():
            if k.endswith("attention.self.key.bias"):
                continue  # zero true gradient: moves by rounding noise only
            ref = float(torch.linalg.vector_norm(right[k])) or 1.0
            worst = max(worst, float(torch.linalg.vector_norm(v - right[k])) / ref)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--method", choices=("full", "lora"), default="full")
    args = ap.parse_args()
    sets = [f"method={args.method}", f"max_steps={args.steps}", f"batch_size={args.batch}",
            f"max_length={args.max_length}", "threads=1", "eval_max_rows=16"]
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), rows=max(64, 2 * args.batch * args.steps))
        ddp = launch(project, "exp-benchddp", False, sets)
        fsdp = launch(project, "exp-benchfsdp", True, sets)
        gap = weight_gap(fsdp["adapter"], ddp["adapter"])
    print(f"MiniLM {args.method}, 2 gloo ranks x 1 thread, batch {args.batch}/rank, "
          f"max_length {args.max_length}, {args.steps} steps")
    print(f"{'layout':<6} {'s/step':>8} {'tok/s':>8} {'peak RSS per rank (MB)':>24} {'wall s':>8}")
    for name, r in (("ddp", ddp), ("fsdp", fsdp)):
        print(f"{name:<6} {r['s_per_step']:>8.3f} {r['tokens_per_s']:>8.1f} "
              f"{str(r['peak_rss_mb']):>24} {r['wall_s']:>8.1f}")
    print(json.dumps({
        "fsdp_over_ddp": {
            "s_per_step": round(fsdp["s_per_step"] / ddp["s_per_step"], 3),
            "tokens_per_s": round(fsdp["tokens_per_s"] / ddp["tokens_per_s"], 3),
            "peak_rss": round(max(fsdp["peak_rss_mb"]) / max(ddp["peak_rss_mb"]), 3),
        },
        "max_relative_weight_gap": gap,
    }, indent=2))


if __name__ == "__main__":
    main()
