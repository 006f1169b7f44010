"""Generative handlers: cost of a DPO step and of RAG retrieval, as ratios to a baseline.

- DPO loss + backward per micro-batch: chosen and rejected packed into one forward (ours) vs
  the same sequences one per padded row, and vs two separate forwards (chosen, then
  rejected), the plain way; all with the reference pass (adapter off).
- Retrieval: MiniLM top-k over each HotpotQA record's passages, cold (embedding everything)
  vs warm (the in-memory cache).

    python -m benchmarks.bench_generative_handlers [--pairs 8] [--rows 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from .common import peak_rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _records(locator: str, shape: str, n: int) -> list[dict]:
    from brewslm_core.mapping import dry_run

    report = dry_run(locator, shape, sample_size=max(n, 20))
    return [{"record": t.record} for t in report.accepted_sample[:n]]


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bench_dpo(pairs: int, max_length: int, repeats: int) -> dict:
    from brewslm_core.train import TrainConfig
    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.handlers.alignment import AlignmentHandler

    rows = _records(f"json:{DATA / 'preference' / 'llamafactory_dpo_en_demo.json'}", "preference", pairs)
    config = TrainConfig(task_profile="alignment", max_length=max_length, lora_r=8)
    handler = AlignmentHandler()
    handler.setup(resolve_model_path("auto", "alignment"), rows, config)
    model = handler.build_model(config)
    examples = [e for e in handler.encode(rows) if e is not None]
    real = sum(e.length for e in examples)

    def step(batch: dict) -> None:
        loss, _ = handler.loss(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)

    packed = handler.collate(examples, True)
    padded = handler.collate(examples, False)

    def separate() -> None:  # chosen then rejected, each its own policy + reference forward
        import torch

        n, both = len(examples), padded
        logps = []
        for part in (slice(0, n), slice(n, 2 * n)):
            sub = {k: v[part] for k, v in both.items() if k in ("input_ids", "position_ids", "target")}
            seg = both["segment"][part]
            sub["segment"] = torch.where(seg >= 0, seg - part.start, seg)
            sub["n_sequences"] = n
            logps.append(handler.sequence_logps(model, sub) - handler.reference_logps(model, sub))
        margin = handler.beta * (logps[0] - logps[1])
        (-torch.nn.functional.logsigmoid(margin)).sum().backward()
        model.zero_grad(set_to_none=True)

    out = {
        "pairs": len(examples),
        "real_tokens": real,
        "packed_tokens": packed["tokens"],
        "padded_tokens": padded["tokens"],
        "packed_s": _timed(lambda: step(packed), repeats),
        "padded_s": _timed(lambda: step(padded), repeats),
        "separate_s": _timed(separate, repeats),
    }
    out["packed_vs_separate_speedup"] = out["separate_s"] / out["packed_s"]
    out["packed_vs_padded_speedup"] = out["padded_s"] / out["packed_s"]
    out["packed_real_tokens_per_s"] = real / out["packed_s"]
    return out


def bench_retrieval(n: int) -> dict:
    from brewslm_core.train.retrieval import Embedder, retrieve

    hotpot = DATA / "rag" / "hotpot_dev_distractor_v1_first53.json"
    records = [r["record"] for r in _records(f"json:{hotpot}", "rag", n)]
    embedder = Embedder()
    embedder._load()  # model load is not retrieval
    t0 = time.perf_counter()
    found = retrieve(embedder, records, 3)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    retrieve(embedder, records, 3)
    warm = time.perf_counter() - t0
    recall = [
        len({s["title"] for s in r["supporting"]} & {p.title for p, _ in f}) / max(len(r["supporting"]), 1)
        for r, f in zip(records, found, strict=True)
    ]
    return {
        "records": len(records),
        "cold_s": cold,
        "warm_s": warm,
        "cache_speedup": cold / warm if warm else None,
        "supporting_recall_at_3": sum(recall) / len(recall),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    result = {
        "dpo": bench_dpo(args.pairs, args.max_length, args.repeats),
        "retrieval": bench_retrieval(args.rows),
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
