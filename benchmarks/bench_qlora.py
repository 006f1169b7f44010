"""QLoRA (LoRA over a 4-bit NF4 base) against LoRA over the fp32 base: memory and step time.

    python -m benchmarks.bench_qlora                      # 16 rows, 5 steps each: a few minutes
    python -m benchmarks.bench_qlora --rows 32 --steps 10 --threads 2

SmolLM2-135M-Instruct SFT on the alpaca demo rows through the real engine (``train``), LoRA r=16
on all linear layers, once per method, each in its own subprocess so its peak RSS is its own.
Reported as ratios qlora / lora (the baseline, measured in the same run):
  weight bytes   parameters + buffers of the built model (4-bit weights counted packed)
  build s        loading (and for qlora quantising) the model and wrapping it with LoRA
  step s         median optimizer-step time (steps after the first, which warms up)
  peak RSS       the subprocess's peak resident memory
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

from .common import REPO, alpaca, peak_rss_mb

METHODS = ("lora", "qlora")  # the first is the baseline


def measure(method: str, args: argparse.Namespace) -> dict:
    """One method in this process: build once (bytes, seconds), then a short training run."""
    from brewslm_core import Project
    from brewslm_core.train import TrainConfig, read_trace, train
    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.handlers import Seq2SeqHandler

    config = TrainConfig(
        task_profile="seq2seq", method=method, lora_r=16, max_steps=args.steps, batch_size=args.batch,
        max_length=args.max_length, threads=args.threads, lr=2e-4,
    )
    handler = Seq2SeqHandler()
    handler.setup(resolve_model_path("auto", "seq2seq"), [], config)
    start = time.perf_counter()
    model = handler.build_model(config)
    build_s = time.perf_counter() - start
    weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    del model
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "proj")
        result = train(project, config, alpaca(args.rows))
        if result.status != "completed":
            raise SystemExit(f"{method}: {result.status}: {result.error}")
        steps = read_trace(Path(result.run_dir) / "trace.jsonl", "train")
        step_s = [s["real_tokens"] / s["tokens_per_s"] for s in steps]
        losses = [s["loss"] for s in steps]
    return {
        "method": method,
        "weight_bytes": weight_bytes,
        "build_s": build_s,
        "step_s": statistics.median(step_s[1:] or step_s),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return

    results = {}
    for method in METHODS:
        argv = [sys.executable, "-m", "benchmarks.bench_qlora", "--child", method,
                "--rows", str(args.rows), "--steps", str(args.steps), "--batch", str(args.batch),
                "--max-length", str(args.max_length), "--threads", str(args.threads)]
        out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{method} failed:\n{out.stderr[-3000:]}")
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])

    base, q = results["lora"], results["qlora"]
    print(f"SmolLM2-135M SFT, {args.rows} rows, {args.steps} steps, batch {args.batch}, "
          f"max_length {args.max_length}, {args.threads} threads")
    print(f"{'':14}{'lora':>12}{'qlora':>12}{'qlora/lora':>12}")
    for key, label, scale in (("weight_bytes", "weight MB", 2**-20), ("build_s", "build s", 1.0),
                              ("step_s", "step s", 1.0), ("peak_rss_mb", "peak RSS MB", 1.0)):
        print(f"{label:14}{base[key] * scale:12.2f}{q[key] * scale:12.2f}{q[key] / base[key]:12.2f}")
    for r in (base, q):
        print(f"{r['method']:6} loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}")


if __name__ == "__main__":
    main()
