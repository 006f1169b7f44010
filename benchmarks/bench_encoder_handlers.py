"""Training throughput of the encoder-side handlers against the transformers task models.

    python -m benchmarks.bench_encoder_handlers                 # ner + qa, a few minutes
    python -m benchmarks.bench_encoder_handlers --task ner --steps 20 --rows 512 --batch 32

Same MiniLM weights, same encoded examples, full fine-tuning, AdamW, same batch size:
  hf-dynamic    AutoModelForTokenClassification / AutoModelForQuestionAnswering with the
                transformers padding collators (pad to the batch's longest), random batches
                (the baseline)
  hf-grouped    the same HF models and collators, batches from transformers' LengthGroupedSampler
                (what TrainingArguments group_by_length uses): HF's own answer to padding
  ours-padded   our handler, one example per row (padded), random batches
  ours-packed   our handler, length-bucketed batches packed into shared rows (block-diagonal
                attention, restarted positions) - what the engine does by default
Reported: real (non-pad) tokens/s and its ratio to hf-dynamic (and ours-packed against
hf-grouped), the share of computed tokens
that are padding, and the process's peak RSS. The first step of each variant is a warm-up and
is not timed; variants take their steps in turn (round-robin). Tasks: ner = wnut17 (token
classification), qa = SQuAD v2 Normans windows.
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import islice
from pathlib import Path

from .common import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
TASKS = {
    "ner": ("structured_extraction", "conll:ner/wnut17_emerging.dev.conll", "token_classification"),
    "qa": ("qa", "json:qa_squad/squad_v2_dev_Normans_subset.json", "extractive_qa"),
}
VARIANTS = ("hf-dynamic", "hf-grouped", "ours-padded", "ours-packed")


def mapped_rows(spec: str, shape: str, limit: int) -> list[dict]:
    from brewslm_core.introspect.core import open_connector
    from brewslm_core.mapping import map_rows, resolve

    kind, _, rel = spec.partition(":")
    conn = open_connector(f"{kind}:{DATA / rel}")
    field_map, options = resolve(conn, shape, None, None)
    items = islice(map_rows(conn, shape, field_map, options), limit)
    return [{"record": item.record} for item in items if hasattr(item, "record")]


def hf_model(task: str, handler):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification

    torch.manual_seed(0)
    if task == "ner":
        return AutoModelForTokenClassification.from_pretrained(
            handler.model_path, num_labels=len(handler.labels), attn_implementation="sdpa"
        )
    return AutoModelForQuestionAnswering.from_pretrained(handler.model_path, attn_implementation="sdpa")


def hf_batch(task: str, handler, examples) -> dict:
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    if task == "ner":
        collator = DataCollatorForTokenClassification(handler.tokenizer)
        return collator([{"input_ids": e.input_ids, "labels": e.target} for e in examples])
    collator = DataCollatorWithPadding(handler.tokenizer)
    return collator(
        [
            {
                "input_ids": e.input_ids,
                "token_type_ids": e.extra["token_type_ids"],
                "start_positions": e.target[0],
                "end_positions": e.target[1],
            }
            for e in examples
        ]
    )


class Variant:
    """One training setup; ``step()`` runs (and times) one optimizer step."""

    def __init__(self, task: str, name: str, handler, config, examples, steps: int, batch: int):
        import torch

        from brewslm_core.train.packing import plan_epoch

        self.task, self.name, self.handler, self.examples = task, name, handler, examples
        lengths = [e.length for e in examples]
        if name == "hf-grouped":
            from transformers.trainer_pt_utils import LengthGroupedSampler

            seeded = torch.Generator().manual_seed(0)
            order = list(LengthGroupedSampler(batch, lengths=lengths, generator=seeded))
            plan = [order[i : i + batch] for i in range(0, len(order), batch)]
        else:
            strategy = "bucket" if name == "ours-packed" else "random"
            plan = plan_epoch(lengths, batch, seed=0, epoch=0, strategy=strategy)
        self.plan = (plan * (steps // max(len(plan), 1) + 2))[: steps + 1]
        self.hf = name.startswith("hf-")
        self.model = hf_model(task, handler) if self.hf else handler.build_model(config)
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4)
        self.real = self.computed = 0
        self.seconds = 0.0
        self.loss = float("nan")

    def step(self, index: int) -> None:
        chosen = [self.examples[i] for i in self.plan[index]]
        t0 = time.perf_counter()
        if self.hf:
            inputs = hf_batch(self.task, self.handler, chosen)
            loss = self.model(**inputs).loss
            tokens = inputs["input_ids"].numel()
        else:
            packed = self.handler.collate(chosen, self.name == "ours-packed")
            loss, n = self.handler.loss(self.model, packed)
            loss = loss / n
            tokens = packed["tokens"]
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss = float(loss.detach())
        if index:  # step 0 warms up kernels and allocator
            self.seconds += time.perf_counter() - t0
            self.real += sum(e.length for e in chosen)
            self.computed += tokens

    def result(self) -> dict:
        return {
            "variant": self.name,
            "real_tokens_per_s": self.real / self.seconds if self.seconds else 0.0,
            "pad_share": 1 - self.real / self.computed if self.computed else 0.0,
            "seconds": self.seconds,
            "final_loss": self.loss,
        }


def bench_task(task: str, rows: int, steps: int, batch: int, max_length: int) -> list[dict]:
    from brewslm_core.train import TrainConfig, get_handler
    from brewslm_core.train.base_model import resolve_model_path

    profile, spec, shape = TASKS[task]
    data = mapped_rows(spec, shape, rows)
    config = TrainConfig(task_profile=profile, method="full", max_length=max_length, seed=0)
    handler = get_handler(profile)
    handler.setup(resolve_model_path("auto", profile), data, config)
    examples = [e for e in handler.encode(data) if e is not None]
    variants = [Variant(task, name, handler, config, examples, steps, batch) for name in VARIANTS]
    # round-robin, one step each in turn: load from other processes on a shared machine then
    # falls on every variant alike instead of on whichever ran during a busy minute
    for index in range(steps + 1):
        for variant in variants:
            variant.step(index)
    return [v.result() for v in variants]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="ner,qa", help="ner, qa or both (comma separated)")
    ap.add_argument("--rows", type=int, default=256, help="source rows mapped per task")
    ap.add_argument("--steps", type=int, default=8, help="timed optimizer steps per variant")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for task in [t.strip() for t in args.task.split(",") if t.strip()]:
        print(f"{task}: {args.steps} steps, batch {args.batch}, max_length {args.max_length}, "
              f"{args.threads} threads", flush=True)
        results = bench_task(task, args.rows, args.steps, args.batch, args.max_length)
        base = results[0]["real_tokens_per_s"] or 1.0
        print(f"  {'variant':<12} {'ratio':>6} {'real tok/s':>11} {'pad share':>10} {'loss':>8}")
        for r in results:
            print(f"  {r['variant']:<12} {r['real_tokens_per_s'] / base:>6.2f} "
                  f"{r['real_tokens_per_s']:>11.0f} {r['pad_share']:>10.1%} {r['final_loss']:>8.3f}")
        by = {r["variant"]: r["real_tokens_per_s"] for r in results}
        if by.get("hf-grouped"):
            print(f"  ours-packed vs hf-grouped: {by['ours-packed'] / by['hf-grouped']:.2f}x real tok/s")
    print(f"peak RSS {peak_rss_mb():.0f} MB (whole process, all variants)")


if __name__ == "__main__":
    main()
