"""Media handlers through the engine: speed ratios against a baseline run in the same process
tree, quality before/after, peak RSS per run (each run in its own child process).

- vision_language: packed rows (the default) vs one example per row (baseline), SmolLM2 + a
  randomly initialised ViT on easy_vqa. Reports real tokens/s, eval loss and exact match.
- audio_transcription: LoRA on q/v (the default) vs full fine-tuning (baseline) of whisper
  tiny.en on FSDD. Reports clips/s and WER before/after.

    python -m benchmarks.bench_media [--steps 20] [--eval 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
DIGITS = "zero one two three four five six seven eight nine".split()


def vqa_rows(start: int, n: int) -> list[dict]:
    folder = DATA / "vision_language" / "easy_vqa_test"
    triples = json.loads((folder / "questions.json").read_text())[start : start + n]
    return [{"record": {"images": [str(folder / "images" / f"{image}.png")],
                        "messages": [{"role": "user", "content": "<image>" + question},
                                     {"role": "assistant", "content": answer}]}}
            for question, answer, image in triples]


def fsdd_rows(index: list[int], speakers: tuple[str, ...]) -> list[dict]:
    folder = DATA / "audio_fsdd" / "recordings"
    return [{"record": {"audio": str(folder / f"{d}_{s}_{i}.wav"), "text": DIGITS[d]}}
            for i in index for s in speakers for d in range(10)]


def _run(spec: dict, queue: mp.Queue) -> None:
    import torch

    from brewslm_core import Project
    from brewslm_core.train import TrainConfig, get_handler, train
    from brewslm_core.train.base_model import resolve_model_path

    torch.set_num_threads(spec["threads"])
    config = TrainConfig(**spec["config"])
    train_rows, eval_rows = spec["train"], spec["eval"]
    before = None
    if spec.get("score_before"):  # the untouched base (LoRA starts as the identity)
        handler = get_handler(config.task_profile)
        handler.setup(resolve_model_path(config.base, config.task_profile), train_rows, config)
        before = handler.score(handler.build_model(config), eval_rows)
        del handler
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "proj")
        t0 = time.perf_counter()
        result = train(project, config, train_rows, eval_rows)
        seconds = time.perf_counter() - t0
        trace = [json.loads(x) for x in (Path(result.run_dir) / "trace.jsonl").read_text().splitlines()]
    steps = [t for t in trace if t["split"] == "train"]
    step_s = sum(t["real_tokens"] / t["tokens_per_s"] for t in steps if t["tokens_per_s"])
    queue.put({
        "status": result.status, "error": result.error, "seconds": seconds,
        "train_seconds": step_s,
        "real_tokens_per_s": sum(t["real_tokens"] for t in steps) / step_s,
        "samples_per_s": sum(t["samples"] for t in steps) / step_s,
        "first_loss": steps[0]["loss"], "final_loss": result.final_train_loss,
        "before": _brief(before), "after": _brief(result.eval),
        "peak_rss_mb": peak_rss_mb(),
    })


def _brief(score: dict | None) -> dict | None:
    if not score:
        return None
    keys = ("n", "eval_loss", "exact_match", "token_f1", "wer", "cer")
    return {k: round(score[k], 4) if isinstance(score[k], float) else score[k]
            for k in keys if k in score}


def run(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(spec, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("vision", "audio"), default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, dict] = {}

    if args.only in (None, "vision"):
        batch = 8
        train_rows = vqa_rows(0, args.steps * batch)
        eval_rows = vqa_rows(5000, args.eval)
        base = {"task_profile": "vision_language", "max_steps": args.steps, "batch_size": batch,
                "max_length": 128, "lr": 1e-3, "threads": args.threads}
        for name, packing in (("vl_unpacked", False), ("vl_packed", True)):
            results[name] = run({"config": {**base, "packing": packing}, "train": train_rows,
                                 "eval": eval_rows, "threads": args.threads,
                                 "score_before": packing})
            print(name, json.dumps(results[name]), flush=True)
        ratio = results["vl_packed"]["real_tokens_per_s"] / results["vl_unpacked"]["real_tokens_per_s"]
        print(f"vision_language packed / one-per-row real tokens/s: {ratio:.2f}x")

    if args.only in (None, "audio"):
        batch = 4
        steps = max(2, args.steps // 4)
        train_rows = fsdd_rows([1, 2], ("jackson", "theo", "lucas", "nicolas"))[: steps * batch]
        eval_rows = fsdd_rows([0], ("george", "yweweler"))[: args.eval]
        base = {"task_profile": "audio_transcription", "max_steps": steps, "batch_size": batch,
                "max_length": 16, "lr": 1e-4, "threads": args.threads}
        for name, method in (("audio_full", "full"), ("audio_lora", "lora")):
            results[name] = run({"config": {**base, "method": method}, "train": train_rows,
                                 "eval": eval_rows, "threads": args.threads,
                                 "score_before": method == "lora"})
            print(name, json.dumps(results[name]), flush=True)
        ratio = results["audio_lora"]["samples_per_s"] / results["audio_full"]["samples_per_s"]
        print(f"audio_transcription LoRA / full clips/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
