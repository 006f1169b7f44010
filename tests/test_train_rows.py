"""Real rows for the train tests, shaped as prepare writes them (``{"record": …}``).

Shared by the test_train_* modules; holds no tests itself.
"""

from __future__ import annotations

import csv
import json


def banking_rows(shared_data, n: int, split: str = "train", labels: int = 4) -> list[dict]:
    """``n`` rows from the first ``labels`` intents, interleaved (the file is sorted by intent)."""
    with (shared_data / "banking77" / f"{split}.csv").open(encoding="utf-8") as fh:
        by_label: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by_label.setdefault(r["category"], []).append(r["text"])
    chosen = sorted(by_label)[:labels]
    out = []
    for i in range(max(len(v) for v in by_label.values())):
        for label in chosen:
            if i < len(by_label[label]) and len(out) < n:
                out.append({"record": {"text": by_label[label][i], "label": label}})
    return out


def alpaca_rows(shared_data, n: int, shortest: bool = True) -> list[dict]:
    data = json.loads((shared_data / "instruct" / "llamafactory_alpaca_en_demo.json").read_text("utf-8"))
    if shortest:
        data = sorted(data, key=lambda d: len(d["instruction"] + d["input"] + d["output"]))
    out = []
    for d in data[:n]:
        user = d["instruction"] + ("\n\n" + d["input"] if d["input"] else "")
        out.append(
            {
                "record": {
                    "messages": [
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": d["output"]},
                    ]
                }
            }
        )
    return out
