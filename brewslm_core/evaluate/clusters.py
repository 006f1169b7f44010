"""Failure clusters: the failing examples of an eval grouped so they can be fixed together.

Label tasks group by confusion pair (gold -> predicted). Text tasks embed each failing input
with MiniLM (mean-pooled, normalised) and group with scikit-learn's KMeans (k = about
sqrt(n / 2), at most 8, seeded). A cluster's id comes from its pair or its member ids, so the
same failures give the same ids on a re-run. Each cluster's rows are written as a JSONL file
that the Map stage opens as a source (``augment_from_cluster``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..contracts.evaluate import FailureCluster

LABEL_TASKS = ("classification", "safety")
MAX_CLUSTERS = 8


def _cid(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:10]}"


def input_text(record: dict[str, Any]) -> str:
    """The part of a record the model reads, as one string (for embedding and labels)."""
    for key in ("text", "question", "instruction", "source"):
        if record.get(key):
            return str(record[key])
    messages = record.get("messages") or record.get("prompt")
    if isinstance(messages, list):
        users = [str(m.get("content", "")) for m in messages
                 if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return users[-1]
    if isinstance(messages, str):
        return messages
    if record.get("tokens"):
        return " ".join(map(str, record["tokens"]))
    return str(record.get("audio") or json.dumps(record, ensure_ascii=False)[:500])


def embed(texts: Sequence[str]) -> Any:
    """[n, dim] unit MiniLM embeddings (mean pooling over real tokens)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ..models import materialize, resolve_base

    path = materialize(resolve_base("minilm", "classification"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            enc = tokenizer(list(texts[i : i + 64]), padding=True, truncation=True, max_length=128,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).numpy()


def _write(folder: Path, cid: str, rows: list[dict[str, Any]]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cid}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row["record"], ensure_ascii=False, default=str) + "\n")
    return f"jsonl:{path}"


def failure_clusters(task_profile: str, examples: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                     folder: Path) -> list[FailureCluster]:
    """Clusters of the examples whose ``correct`` is False (``index`` points into ``rows``)."""
    failing = [e for e in examples if e.get("correct") is False]
    if not failing:
        return []
    if task_profile in LABEL_TASKS:
        return _confusion_pairs(failing, rows, folder)
    return _kmeans(failing, rows, folder)


def _confusion_pairs(failing: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                     folder: Path) -> list[FailureCluster]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in failing:
        groups.setdefault((str(e["gold"]), str(e["prediction"])), []).append(e)
    out = []
    for (gold, pred), members in groups.items():
        cid = _cid("cp", f"{gold}\x00{pred}")
        out.append(FailureCluster(
            cluster_id=cid, kind="confusion_pair", size=len(members),
            label=f"{gold} predicted as {pred}",
            example_ids=tuple(m["id"] for m in members),
            source=_write(folder, cid, [rows[m["index"]] for m in members]),
            gold_label=gold, predicted_label=pred,
        ))
    return sorted(out, key=lambda c: (-c.size, c.cluster_id))


def _kmeans(failing: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
            folder: Path) -> list[FailureCluster]:
    texts = [input_text(rows[e["index"]]["record"]) for e in failing]
    k = max(1, min(MAX_CLUSTERS, len(failing), round(math.sqrt(len(failing) / 2))))
    if k == 1:
        assign = [0] * len(failing)
        centre_of = {0: 0}
    else:
        import numpy as np
        from sklearn.cluster import KMeans

        vectors = embed(texts)
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(vectors)
        assign = km.labels_.tolist()
        dist = km.transform(vectors)
        centre_of = {c: int(np.argmin(np.where(km.labels_ == c, dist[:, c], np.inf))) for c in set(assign)}
    out = []
    for c in sorted(set(assign)):
        members = [e for e, a in zip(failing, assign, strict=True) if a == c]
        ids = tuple(m["id"] for m in members)
        cid = _cid("km", "\x00".join(sorted(ids)))
        central = texts[centre_of[c]]
        out.append(FailureCluster(
            cluster_id=cid, kind="embedding_kmeans", size=len(members),
            label=f"like: {central[:80]}" + ("…" if len(central) > 80 else ""),
            example_ids=ids, source=_write(folder, cid, [rows[m["index"]] for m in members]),
        ))
    return sorted(out, key=lambda c: (-c.size, c.cluster_id))
