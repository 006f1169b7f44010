"""Distillation cost: teacher capture vs a plain forward pass, and an SFT step with KD vs without.

    python -m benchmarks.bench_distill                    # 16 rows, 5 steps: a few minutes
    python -m benchmarks.bench_distill --rows 64 --steps 10 --threads 2

SmolLM2-135M-Instruct (the SFT default) teaches itself on the alpaca demo rows, LoRA r=16.
Reported as ratios against baselines measured in this run:
  capture / forward   capture_teacher (encode, forward, top-k, write) vs the handler's scoring
                      forward (loss_score()) over the same rows
  kd step / ce step   median optimizer-step time with distill_from set vs the same run without
                      (steps after the first, which warms up)
plus absolute figures (positions/s, s/step) and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from .common import alpaca, peak_rss_mb


def step_seconds(trace_path: Path) -> list[float]:
    from brewslm_core.train import read_trace

    return [s["real_tokens"] / s["tokens_per_s"] for s in read_trace(trace_path, "train")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from brewslm_core import Project
    from brewslm_core.train import TrainConfig, capture_teacher, train
    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.handlers import Seq2SeqHandler

    torch.set_num_threads(args.threads)
    rows = alpaca(args.rows)
    base = dict(
        task_profile="seq2seq",
        method="lora",
        lora_r=16,
        lora_alpha=32,
        batch_size=args.batch,
        max_length=args.max_length,
        max_steps=args.steps,
        epochs=100,
        threads=args.threads,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench")

        # baseline: the same model's scoring forward over the same rows
        handler = Seq2SeqHandler()
        path = resolve_model_path("auto", "seq2seq")
        handler.setup(path, rows, TrainConfig(**base))
        model = handler.build_model(TrainConfig(**{**base, "method": "full"})).eval()
        t = time.perf_counter()
        handler.loss_score(model, rows)  # the loss forward only (score() also generates)
        forward_s = time.perf_counter() - t
        del model

        capture = capture_teacher(
            project, "auto", rows, top_k=args.top_k, max_length=args.max_length, threads=args.threads
        )
        # the first call warms the file caches; time the second (teacher load included)
        t = time.perf_counter()
        capture = capture_teacher(
            project, "auto", rows, top_k=args.top_k, max_length=args.max_length, threads=args.threads
        )
        capture_s = time.perf_counter() - t

        runs = {}
        for name, extra in (("ce", {}), ("kd", {"distill_from": capture.capture_id})):
            result = train(project, TrainConfig(**{**base, **extra}), rows)
            assert result.status == "completed", result.error
            steps = step_seconds(Path(result.run_dir) / "trace.jsonl")
            runs[name] = statistics.median(steps[1:] or steps)

    print(
        f"rows {args.rows}, examples {capture.examples}, loss positions {capture.positions}, "
        f"top-k {args.top_k}, threads {args.threads}"
    )
    print(
        f"capture / forward     {capture_s / forward_s:6.2f}x   "
        f"(capture {capture_s:.2f} s = {capture.positions / capture_s:.0f} positions/s, "
        f"forward {forward_s:.2f} s)"
    )
    ce_s, kd_s = runs["ce"], runs["kd"]
    print(
        f"kd step / ce step     {kd_s / ce_s:6.2f}x   "
        f"(kd {kd_s:.2f} s/step, ce {ce_s:.2f} s/step, median of steps 2..{args.steps})"
    )
    print(f"peak RSS              {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
