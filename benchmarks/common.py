"""What several benchmarks share: where the shared data lives, alpaca rows, peak RSS (the one reader)."""

from __future__ import annotations

import json
import os
import random
import resource
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


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    """The largest peak resident memory of this process's finished children (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
