"""What several benchmarks share: where the shared data lives, alpaca rows, peak RSS (the one reader)."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))


def alpaca(n: int, seed: int = 0) -> list[dict]:
    """``n`` alpaca-demo rows (shuffled by ``seed``) as chat records, the way mapping writes them."""
    data = json.loads((DATA / "instruct" / "llamafactory_alpaca_en_demo.json").read_text("utf-8"))
    random.Random(seed).shuffle(data)
    rows = []
    for d in data[:n]:
        user = d["instruction"] + ("\n\n" + d["input"] if d["input"] else "")
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": d["output"]}]
        rows.append({"record": {"messages": messages}})
    return rows


def run_worker(module: str, *args: str) -> dict:
    """Run ``python -m benchmarks.<module> --worker ARGS…`` in a fresh process (so its peak RSS is
    its own) and return the JSON object it prints last; a failure raises with its stderr tail."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--worker", *args],
                         capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} worker {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    """The largest peak resident memory of this process's finished children (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
