"""Eval scoring throughput: our Evaluate path against a transformers text-classification pipeline.

    python -m benchmarks.bench_eval                  # 800 banking77 test rows (20 intents), 2 threads
    python -m benchmarks.bench_eval --rows 400 --labels 10 --threads 1

Same rows, same encoder weights, same threads, same max length:
  pipeline   ``pipeline("text-classification")`` over a BertForSequenceClassification built from
             the run's encoder with the LoRA merged in (the head there is untrained: only speed
             is compared), batch_size 64, padding to each batch's longest text (the baseline)
  ours       ``handler.score(model, rows, per_example=True)`` as ``evaluate()`` calls it: packed
             rows, per-class metrics, confusion matrix and per-example results included
Reported: rows/s of each (best of ``--repeats`` alternating rounds after one warm-up) and the
ratio ours / pipeline, measured in this run; plus the whole ``evaluate()`` wall time (load,
score, clusters, report on disk) for reference. Goal: ratio >= 1.5.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
GOAL = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--labels", type=int, default=20, help="intents (banking77 test has 40 rows each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    import torch
    from transformers import AutoModelForSequenceClassification, pipeline

    sys.path.insert(0, str(REPO / "tests"))
    from test_train_rows import banking_rows  # noqa: E402  (shared test data helper)

    from brewslm_core import Project
    from brewslm_core.evaluate import EvalPack, evaluate
    from brewslm_core.predict import load_run
    from brewslm_core.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    train_rows = banking_rows(DATA, 8 * args.labels, labels=args.labels)
    rows = banking_rows(DATA, args.rows, split="test", labels=args.labels)
    texts = [r["record"]["text"] for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench")
        config = TrainConfig(task_profile="classification", max_steps=2, batch_size=16, threads=args.threads,
                             max_length=args.max_length)
        result = train(project, config, train_rows)
        loaded = load_run(project, result.run_id)
        handler, model = loaded.handler, loaded.model

        merged_dir = Path(tmp) / "merged"
        loaded.model.encoder.save_pretrained(merged_dir)  # load_run merged the encoder's LoRA
        loaded.tokenizer.save_pretrained(merged_dir)
        hf = AutoModelForSequenceClassification.from_pretrained(
            merged_dir, num_labels=len(handler.labels), attn_implementation="sdpa"
        ).eval()
        pipe = pipeline("text-classification", model=hf, tokenizer=loaded.tokenizer, device=-1)

        def run_pipeline() -> float:
            t = time.perf_counter()
            out = pipe(texts, batch_size=64, truncation=True, max_length=args.max_length)
            assert len(out) == len(texts)
            return time.perf_counter() - t

        def run_ours() -> float:
            t = time.perf_counter()
            scores = handler.score(model, rows, per_example=True)
            assert len(scores["per_example"]) == len(rows)
            return time.perf_counter() - t

        pipe(texts[:64], batch_size=64, truncation=True, max_length=args.max_length)  # warm-up
        handler.score(model, rows[:64], per_example=True)
        best = {"pipeline": float("inf"), "ours": float("inf")}
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            best["pipeline"] = min(best["pipeline"], run_pipeline())
            best["ours"] = min(best["ours"], run_ours())
        t = time.perf_counter()
        report = evaluate(project, result.run_id,
                          EvalPack(name="bench", path="", dataset={"file": _write(Path(tmp), rows)}),
                          loaded=loaded)
        whole = time.perf_counter() - t

    per_s = {k: len(rows) / v for k, v in best.items()}
    ratio = per_s["ours"] / per_s["pipeline"]
    print(f"rows {len(rows)}, labels {len(handler.labels)}, threads {args.threads}, "
          f"max_length {args.max_length}")
    print(f"  pipeline(text-classification) {per_s['pipeline']:8.1f} rows/s")
    print(f"  ours (handler.score)          {per_s['ours']:8.1f} rows/s")
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"  ratio ours / pipeline         {ratio:8.2f}x  (goal >= {GOAL}x: {verdict})")
    print(f"  evaluate() end to end         {whole:8.2f} s for {report.n_examples} rows "
          f"({len(report.failure_clusters)} failure clusters, report at {Path(report.path).name})")
    return 0


def _write(folder: Path, rows: list[dict]) -> str:
    import json

    path = folder / "bench_rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
