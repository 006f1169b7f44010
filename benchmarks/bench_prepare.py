"""Prepare throughput: prepare() vs a bare stratified split, and verified vs plain reads.

    python -m benchmarks.bench_prepare               # banking77 train (10,003 rows)
    python -m benchmarks.bench_prepare --rows 50000  # rows repeated with a suffix to grow

Each measurement runs in its own subprocess, so peak RSS is that measurement's alone; imports
happen before the clock starts. Results are ratios against baselines measured in the same run:
  * prepare (grouped + stratified split, token stats, supervision audit, sha256 manifest) against
    a bare split: read the committed rows, sklearn stratified train_test_split, write two JSONL
    files;
  * reading the train split through the manifest (sha256 verified) against plain json.loads of
    the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb, run_worker

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))


def build_project(folder: Path, rows: int) -> None:
    from brewslm_core import Project
    from brewslm_core.mapping.shapes import text_hash
    from brewslm_core.mapping.store import append_commit

    with open(SHARED / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        base = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(fh)]
    records = [base[i % len(base)] if i < len(base) else
               {**base[i % len(base)], "text": f"{base[i % len(base)]['text']} #{i}"}
               for i in range(rows)]
    project = Project.create(folder)
    append_commit(project, (
        {"import_id": "bench", "row_index": i, "shape": "classification",
         "task_profile": "classification", "config_id": "bench",
         "text_hash": text_hash("classification", r), "record": r}
        for i, r in enumerate(records)
    ), {"import_id": "bench", "config_id": "bench", "shape": "classification", "gold": False,
        "locator": "bench"})


def worker(method: str, folder: str) -> dict:
    from sklearn.model_selection import train_test_split
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: F401 (warm import)

    import brewslm_core.clean  # noqa: F401 (prepare imports it lazily; keep imports off the clock)
    from brewslm_core import Project
    from brewslm_core.contracts.prepare import Manifest
    from brewslm_core.mapping.store import read_committed
    from brewslm_core.models import load_tokenizer, resolve_base
    from brewslm_core.prepare import prepare

    project = Project.open(folder)
    start = time.perf_counter()
    if method == "bare_split":
        rows = list(read_committed(project))
        train, evals = train_test_split(rows, test_size=0.1, random_state=13,
                                        stratify=[r["record"]["label"] for r in rows])
        out = Path(folder) / "bare"
        out.mkdir(exist_ok=True)
        for name, part in (("train", train), ("eval", evals)):
            with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for row in part:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n = len(rows)
    elif method == "tokenizer_load":
        load_tokenizer(resolve_base("auto", "classification"))
        n = 1
    elif method == "prepare":
        m = prepare(project)
        n = m.counts["train"] + m.counts["eval"]
    elif method == "plain_read":
        with open(project.prepared_dir / "train.jsonl", encoding="utf-8") as fh:
            n = sum(1 for line in fh if json.loads(line))
    elif method == "verified_read":
        m = Manifest.load(project)  # verifies every file it lists
        n = sum(1 for _ in m.iter_split(project, "train"))  # verifies train again, then reads
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - start
    return {"method": method, "rows": n, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def run(method: str, folder: Path) -> dict:
    return run_worker("bench_prepare", method, str(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10003)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PROJECT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        folder = Path(tmp) / "project"
        build_project(folder, args.rows)
        results = {m: run(m, folder) for m in ("bare_split", "tokenizer_load", "prepare",
                                               "plain_read", "verified_read")}
    print(f"rows: {args.rows} (banking77 train, classification)")
    print(f"{'method':<16}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}{'ratio':>9}")
    baselines = {"tokenizer_load": "bare_split", "prepare": "bare_split",
                 "verified_read": "plain_read"}
    for name, r in results.items():
        base = results[baselines.get(name, name)]
        ratio = r["seconds"] / base["seconds"]
        rate = r["rows"] / r["seconds"] if r["rows"] > 1 else float("nan")
        print(f"{name:<16}{r['seconds']:>9.3f}{rate:>12,.0f}{r['peak_rss_mb']:>13.0f}"
              f"{ratio:>8.2f}x")
    print("ratios: prepare and tokenizer_load vs bare_split; verified_read vs plain_read "
          "(time; lower is better). prepare includes tokenizer_load.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
