"""Ingest load speed against DuckDB and pandas on the same files, in the same run.

    python -m benchmarks.bench_ingest [--rows 1000000] [--repeat 3]

Each reader runs in its own subprocess (so peak RSS is its own) and reads every row:
ours streams dicts from ``open_source(...).load()``; DuckDB fetches all rows into Python
(``read_json`` / ``read_csv`` + ``fetchall``); pandas builds a DataFrame
(``read_json(lines=True)`` / ``read_csv``). Ratios are ours / baseline rows per second
(> 1 means ours is faster). Ours includes its detection work (encoding over the whole file,
delimiter, quoting, header), which the baselines do differently or not at all.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BANKING = REPO.parent / "shared" / "data" / "banking77" / "train.csv"

READERS = {
    "ours": """
from brewslm_core.ingest import open_source
n = sum(1 for _ in open_source(KIND + ":" + PATH).load())
""",
    "duckdb": """
import duckdb
con = duckdb.connect()
fn = "read_json" if KIND == "jsonl" else "read_csv"
n = len(con.execute(f"SELECT * FROM {fn}(?)", [PATH]).fetchall())
""",
    "pandas": """
import pandas as pd
df = pd.read_json(PATH, lines=True) if KIND == "jsonl" else pd.read_csv(PATH)
n = len(df)
""",
}

HARNESS = """
import json, resource, sys, time
KIND, PATH, REPEAT = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = float("inf")
for _ in range(REPEAT):
    t0 = time.perf_counter()
{body}
    best = min(best, time.perf_counter() - t0)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rows": n, "seconds": best, "peak_rss_mb": rss_mb}}))
"""


def make_jsonl(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = ["data", "model", "small", "train", "token", "label", "café", "naïve", "数据", "résumé"]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 16)))
            fh.write(json.dumps({"id": i, "text": text, "label": f"c{i % 7}",
                                 "score": round(rng.random(), 4)}, ensure_ascii=False) + "\n")


def run(reader: str, kind: str, path: Path, repeat: int) -> dict:
    body = "\n".join("    " + line for line in READERS[reader].strip().splitlines())
    code = HARNESS.format(body=body)
    done = subprocess.run([sys.executable, "-c", code, kind, str(path), str(repeat)],
                          capture_output=True, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(title: str, kind: str, path: Path, repeat: int) -> None:
    print(f"\n== {title}: {path.name} ({path.stat().st_size / 1e6:.1f} MB), best of {repeat}",
          flush=True)
    results = {name: run(name, kind, path, repeat) for name in READERS}
    ours = results["ours"]
    print(f"{'reader':<8} {'rows':>9} {'seconds':>8} {'rows/s':>11} {'peak RSS MB':>12} "
          f"{'ours/this':>10}")
    for name, res in results.items():
        if "error" in res:
            print(f"{name:<8} error: {res['error']}")
            continue
        rate = res["rows"] / res["seconds"]
        ratio = (ours["rows"] / ours["seconds"]) / rate if "error" not in ours else float("nan")
        print(f"{name:<8} {res['rows']:>9} {res['seconds']:>8.3f} {rate:>11,.0f} "
              f"{res['peak_rss_mb']:>12.0f} {ratio:>10.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="generated JSONL rows (0 skips the generated file)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (banking77)")
    args = parser.parse_args()
    if args.rows > 0:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "generated.jsonl"
            make_jsonl(path, args.rows)
            report(f"generated JSONL, {args.rows:,} rows", "jsonl", path, 1)
    if BANKING.is_file():
        report("banking77 train.csv", "csv", BANKING, args.repeat)
    else:
        print(f"\n(banking77 not found at {BANKING}; skipped)")


if __name__ == "__main__":
    main()
