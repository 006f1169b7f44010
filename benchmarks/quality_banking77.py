"""Quality run: MiniLM on banking77 through the product path, scored on all of test.csv.

    python -m benchmarks.quality_banking77                    # the chosen recipe, 3 epochs
    python -m benchmarks.quality_banking77 --epochs 1         # a quicker check
    python -m benchmarks.quality_banking77 --method lora --lr 1e-3

A project is made; banking77 ``train.csv`` is described, introspected, dry-run mapped and
committed through the map stage, (optionally cleaned,) and prepared. The engine trains on every
prepared row (prepare's train and eval splits: both are train.csv rows, and the held-out set
here is test.csv), and scores after each epoch and at the end through the handler's
``score()`` on test.csv, mapped by the same mapper and field map. Prints accuracy, macro-F1,
per-epoch accuracy, wall time, real tokens/s and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))

# The recipe that reached the goal (see the report in the module's run output).
RECIPE = {"method": "full", "lr": 1e-4, "epochs": 3, "batch_size": 32, "max_length": 64, "warmup": 0.05}


def quiet() -> None:
    """Library progress bars and deprecation notes would bury the figures."""
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)


def import_source(project: Any, locator: str, shape: str, *, run_clean: bool = False) -> dict[str, Any]:
    """Describe, introspect, dry-run and commit one source, as a user would; returns the counts.

    Refuses a shape introspection does not rank, rather than forcing it.
    """
    from brewslm_core.ingest import open_source
    from brewslm_core.introspect import introspect
    from brewslm_core.mapping import commit, dry_run

    desc = open_source(locator).describe()
    hyps = introspect(locator)
    hyp = next((h for h in hyps if h.shape == shape), None)
    if hyp is None:
        raise SystemExit(f"introspection did not propose {shape!r} for {locator}: {[h.shape for h in hyps]}")
    fmap, opts = hyp.mapping.field_map, dict(hyp.mapping.options or {})
    report = dry_run(locator, shape, fmap, opts, project=project)
    done = commit(project, locator, shape, fmap, opts)
    print(
        f"ingest {locator.split('/')[-1]}: {desc.rows} rows ({desc.sentinel_rows} sentinel); "
        f"introspect {shape} {hyp.confidence:.2f} {fmap}; dry run {report.accepted}/{report.total} "
        f"accepted {report.by_reason or ''}; committed {done.accepted}",
        flush=True,
    )
    if run_clean:
        from brewslm_core.clean import clean

        rep = clean(project)
        print(f"clean: kept {rep.kept_rows}/{rep.input_rows}, removed {rep.removed_by_reason}", flush=True)
    return {"rows": desc.rows, "accepted": done.accepted, "rejected": done.rejected,
            "field_map": fmap, "options": opts, "confidence": hyp.confidence}


def mapped_rows(locator: str, shape: str, field_map: dict, options: dict) -> tuple[list[dict], dict]:
    """Every row of a source mapped as a commit would map it, without committing it
    (a test set must not enter the project's training pool). Returns rows and reject counts."""
    from brewslm_core.introspect.core import open_connector
    from brewslm_core.mapping import map_rows

    rows: list[dict] = []
    rejected: dict[str, int] = {}
    for item in map_rows(open_connector(locator), shape, field_map, options):
        if hasattr(item, "record"):
            rows.append({"record": item.record})
        else:
            rejected[item.reason] = rejected.get(item.reason, 0) + 1
    return rows, rejected


def read_trace(run_dir: str, split: str) -> list[dict]:
    path = Path(run_dir) / "trace.jsonl"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [t for t in lines if t.get("split") == split]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default=RECIPE["method"], choices=("full", "lora"))
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--max-length", type=int, default=RECIPE["max_length"])
    ap.add_argument("--warmup", type=float, default=RECIPE["warmup"], help="share of steps")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-train-rows", type=int, default=0, help="0 = all prepared rows")
    ap.add_argument("--max-test-rows", type=int, default=0, help="0 = all of test.csv")
    ap.add_argument("--max-steps", type=int, default=0, help="stop early (smoke runs)")
    ap.add_argument("--clean", action="store_true", help="run the clean stage before prepare")
    ap.add_argument("--project", help="keep the project here (default: a temporary folder)")
    ap.add_argument("--json-out", help="also write the figures here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    if args.project:
        return run(args, Path(args.project))
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(tmp) / "banking77")


def run(args: argparse.Namespace, root: Path) -> int:
    from brewslm_core import Project
    from brewslm_core.prepare import prepare
    from brewslm_core.train import TrainConfig, train

    started = time.perf_counter()
    project = Project.create(root, project={"name": "quality-banking77"})
    train_loc = f"csv:{DATA / 'banking77' / 'train.csv'}"
    test_loc = f"csv:{DATA / 'banking77' / 'test.csv'}"
    imported = import_source(project, train_loc, "classification", run_clean=args.clean)
    manifest = prepare(project, task_profile="classification", max_length=args.max_length, seed=args.seed)
    print(f"prepare: {manifest.counts} ({len(manifest.label_set)} labels), max_length {manifest.max_length}")
    rows = list(manifest.iter_split(project, "train")) + list(manifest.iter_split(project, "eval"))
    if args.max_train_rows:  # a seeded sample: train.csv is sorted by label
        rows = random.Random(args.seed).sample(rows, min(args.max_train_rows, len(rows)))
    test, test_rejected = mapped_rows(test_loc, "classification", imported["field_map"], imported["options"])
    if args.max_test_rows:
        test = random.Random(args.seed).sample(test, min(args.max_test_rows, len(test)))
    print(f"test.csv mapped with the same field map: {len(test)} rows, rejected {test_rejected or 0}")

    steps_per_epoch = math.ceil(len(rows) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    cfg = TrainConfig(
        task_profile="classification",
        method=args.method,
        lr=args.lr,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        epochs=args.epochs,
        max_steps=args.max_steps or None,
        batch_size=args.batch_size,
        max_length=args.max_length,
        warmup_steps=round(args.warmup * total),
        eval_every=min(steps_per_epoch, total),
        eval_max_rows=len(test),
        threads=args.threads,
        seed=args.seed,
    )
    print(f"train: {len(rows)} rows, {steps_per_epoch} steps/epoch, {total} steps; config "
          + json.dumps({k: v for k, v in cfg.to_dict().items() if k in (
              "method", "lr", "lora_r", "epochs", "batch_size", "max_length", "warmup_steps",
              "threads", "seed")}), flush=True)
    result = train(project, cfg, rows, test)
    if result.status != "completed":
        print(f"training {result.status}: {result.error}")
        return 1
    # the engine scores again after the last step; keep one line per step
    per_epoch = list({e["step"]: e for e in read_trace(result.run_dir, "eval")}.values())
    ev = result.eval
    figures = {
        "recipe": {"method": args.method, "lr": args.lr, "epochs": args.epochs,
                   "batch_size": args.batch_size, "max_length": args.max_length,
                   "warmup_steps": cfg.warmup_steps, "threads": args.threads},
        "train_rows": len(rows),
        "test_rows": ev.get("n"),
        "test_skipped_unknown_label": ev.get("skipped_unknown_label"),
        "accuracy": ev.get("accuracy"),
        "macro_f1": ev.get("macro_f1"),
        "eval_loss": ev.get("eval_loss"),
        "per_epoch": [{"step": e["step"], "epoch": e["step"] / steps_per_epoch,
                       "accuracy": e.get("accuracy")} for e in per_epoch],
        "steps": result.steps,
        "final_train_loss": result.final_train_loss,
        "train_seconds": result.real_tokens_per_s and sum(
            t["real_tokens"] for t in read_trace(result.run_dir, "train")) / result.real_tokens_per_s,
        "real_tokens_per_s": result.real_tokens_per_s,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }
    print("\n== banking77 quality: all-MiniLM-L6-v2, scored on test.csv ==")
    for e in figures["per_epoch"]:
        print(f"epoch {e['epoch']:.2f} (step {e['step']}): accuracy {e['accuracy']:.4f}")
    print(f"test rows: {figures['test_rows']} (skipped, label unseen in train: "
          f"{figures['test_skipped_unknown_label']})")
    print(f"accuracy: {figures['accuracy']:.4f}")
    print(f"macro_f1: {figures['macro_f1']:.4f}")
    print(f"eval_loss: {figures['eval_loss']:.4f}")
    print(f"final_train_loss: {figures['final_train_loss']:.4f}")
    print(f"steps: {figures['steps']}")
    print(f"train_seconds: {figures['train_seconds']:.1f}")
    print(f"wall_seconds: {figures['wall_seconds']:.1f}")
    print(f"real_tokens_per_s: {figures['real_tokens_per_s']:.0f}")
    print(f"peak_rss_mb: {figures['peak_rss_mb']:.0f}")
    goal = figures["accuracy"] >= 0.90 and args.epochs <= 3
    print(f"goal (>= 0.90 within 3 epochs): {'met' if goal else 'not met'}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
