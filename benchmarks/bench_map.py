"""Map-stage throughput: ingest + introspect + dry run vs a bare DuckDB read and a pandas read.

    python -m benchmarks.bench_map              # 1,000,000 generated JSONL rows + banking77
    python -m benchmarks.bench_map --rows 100000

Flat shapes of JSON Lines files take the columnar dry run (mapping/columnar.py); the goal is
>= 0.3x the bare DuckDB read for them (brewslm_mapped, mapped_*).

Last measured (1,000,000 rows, 113 MB, the shared 2-core box at load ~12, so single ratios
swing by +-30% between runs): duckdb 3.21 s; classification 0.576x (5.57 s), text 0.926x,
alpaca 0.683x, prompt_completion 0.541x, classification with introspection 0.439x; the
per-row path 0.153x (20.95 s; the issue measured 0.067x on a quieter box). Peak RSS 307 MB
(duckdb's read: 458 MB).

Every measurement runs in its own subprocess so peak RSS is that reader's alone. Results are
printed as ratios against the bare DuckDB read of the same file, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb, run_worker

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
METHODS = ("duckdb", "pandas", "brewslm_ingest", "brewslm_mapped", "brewslm_dry_run",
           "brewslm_per_row", "mapped_text", "mapped_alpaca", "mapped_prompt_completion")
# Flat shapes over the same generated columns (the columnar dry run serves them all).
FLAT_MAPS = {
    "mapped_text": ("text", {"text": "text"}),
    "mapped_alpaca": ("alpaca", {"instruction": "text", "output": "label"}),
    "mapped_prompt_completion": ("prompt_completion", {"prompt": "text", "completion": "label"}),
}
CSV_METHODS = ("duckdb", "pandas", "brewslm_ingest", "brewslm_mapped", "brewslm_dry_run")

WORDS = ("card payment refund transfer balance account pending declined limit fee exchange rate "
         "top up cash withdrawal atm pin verify identity lost stolen freeze order new").split()
LABELS = [f"intent_{i:02d}" for i in range(20)]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A classification JSONL: {"text", "label"}; texts differ so dedup keeps nearly all."""
    rng = random.Random(seed)
    dumps = json.JSONEncoder().encode
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, rows, 10_000):
            lines = []
            for i in range(start, min(rows, start + 10_000)):
                words = " ".join(rng.choices(WORDS, k=6 + i % 11))
                lines.append(dumps({"text": f"{words} #{i}", "label": LABELS[i % len(LABELS)]}))
            fh.write("\n".join(lines) + "\n")


def worker(method: str, kind: str, path: str) -> dict:
    """Read all rows of one file with one method; report rows, seconds and peak RSS.

    Imports happen before the clock starts: the figures compare reading, not start-up.
    """
    import duckdb
    import pandas as pd

    from brewslm_core.mapping import dry_run

    start = time.perf_counter()
    if method == "duckdb":
        con = duckdb.connect()
        reader = "read_json" if kind == "jsonl" else "read_csv"
        rows = len(con.execute(f"SELECT * FROM {reader}(?)", [path]).fetchall())
    elif method == "pandas":
        frame = pd.read_json(path, lines=True) if kind == "jsonl" else pd.read_csv(path)
        rows = len(frame)
    elif method == "brewslm_ingest":  # the connector alone: what mapping adds on top of it
        from brewslm_core.ingest import open_source

        rows = sum(1 for _ in open_source(f"{kind}:{path}").load())
    elif method in FLAT_MAPS:
        shape, fields = FLAT_MAPS[method]
        report = dry_run(f"{kind}:{path}", shape, fields)
        rows = report.total
        assert report.accepted + report.rejected == report.total
    else:
        # brewslm_dry_run: introspection proposes the field map (two extra passes: count and
        # stratified sample), then the full map; brewslm_mapped: the field map is given;
        # brewslm_per_row: given map, the per-row path (columnar=False) for comparison.
        fields = None
        if method in ("brewslm_mapped", "brewslm_per_row"):
            fields = {"text": "text", "label": "label" if kind == "jsonl" else "category"}
        report = dry_run(f"{kind}:{path}", "classification", fields,
                         columnar=method != "brewslm_per_row")
        rows = report.total
        assert report.accepted + report.rejected == report.total
    seconds = time.perf_counter() - start
    return {"method": method, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def measure(method: str, kind: str, path: Path) -> dict:
    return run_worker("bench_map", method, kind, str(path))


def report(title: str, results: list[dict]) -> None:
    base = next(r for r in results if r["method"] == "duckdb")
    base_rate = base["rows"] / base["seconds"]
    print(f"\n{title}")
    print(f"{'method':18s} {'rows':>9s} {'seconds':>8s} {'rows/s':>10s} {'vs duckdb':>9s} "
          f"{'peak RSS MB':>11s}")
    for r in results:
        rate = r["rows"] / r["seconds"]
        print(f"{r['method']:18s} {r['rows']:9d} {r['seconds']:8.2f} {rate:10.0f} "
              f"{rate / base_rate:9.3f} {r['peak_rss_mb']:11.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated JSONL rows")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "KIND", "PATH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    print("seconds exclude imports; peak RSS includes the imports of duckdb, pandas and "
          "brewslm_core in every worker subprocess")
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "generated.jsonl"
        t0 = time.perf_counter()
        generate(jsonl, args.rows)
        print(f"generated {args.rows} rows ({jsonl.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")
        report(f"generated classification JSONL, {args.rows} rows (brewslm_mapped and mapped_*: "
               "the columnar dry run of each flat shape; brewslm_per_row: the per-row path)",
               [measure(m, "jsonl", jsonl) for m in METHODS])
    banking = SHARED / "banking77" / "train.csv"
    if banking.is_file():
        report("banking77 train.csv (10,003 rows; CSV takes the per-row path)",
               [measure(m, "csv", banking) for m in CSV_METHODS])
    else:
        print(f"\n(skipped banking77: {banking} not found; set BREWSLM_SHARED_DATA)")


if __name__ == "__main__":
    main()
