"""Training speed: our engine vs the HF Trainer on the same model, data, steps and batch size.

    python -m benchmarks.bench_train            # --quick (default): one epoch each of cls + LoRA SFT
    python -m benchmarks.bench_train --full     # 3 epochs each, and full-fine-tuning SFT
    python -m benchmarks.bench_train --task sft-full --variants hf-grouped,ours
    python -m benchmarks.bench_train --task cls --steps 40 --threads 2

Per task it trains, each in a fresh subprocess (so peak RSS is per run):
  hf-pad-max     HF Trainer, padding to max_length, random batches
  hf-dynamic     HF Trainer, DataCollatorWithPadding, random batches
  hf-grouped     HF Trainer, DataCollatorWithPadding + train_sampling_strategy="group_by_length"
                 (the baseline: HF's best built-in setting)
  ours           brewslm engine: length bucketing + packing with block-diagonal attention, and its
                 default levers (fast CPU dropout masks, attention's included; embedding tables
                 trained by rows; the fused LoRA linear; malloc reuse; the chunked LM loss);
                 ours+nofastdrop/+densegrads/+plainlora/+nomalloc/+plainloss turn one off
                 (+window64: length-sorted windows of 64 batches instead of the whole epoch),
                 ours+bf16/+compile/+foreach/+loop add one; hf-*+bf16, hf-*+compile (its
                 torch_compile=True) and hf-*+malloc likewise
Every variant runs with the same thread count (--threads, default 2), model, train split (batches
sampled from all of it), batch size, steps (default: one full epoch, so every variant trains every
example once) and linear schedule, and is timed over the same span: the whole training call, rows
in to weights saved (tokenising, model load, the loop, the save; scoring is after and untimed;
library imports are done before either clock starts). Ours also reports its loop-only time.
Real (non-pad) tokens/s are reported as ratios of ours against
hf-grouped (the goal: >= 1.2x), hf-dynamic and hf-pad-max, with absolute figures, peak RSS and
model FLOPs utilisation against a matmul peak measured in this run with the same thread count.
Model FLOPs per real token = dense (6 x matmul params for full fine-tuning; 4 x frozen + 6 x
LoRA params for LoRA, which computes no weight gradients for the frozen base) + attention
(12 x layers x width x the token's attended length within its own example, half the example
for a causal model); the LM head counts as a matmul for every token. "Equal quality": every
variant is scored on the same held-out rows after the same steps (eval loss, and accuracy for
cls) and a line says whether ours is no worse than hf-grouped beyond the stated tolerance. SFT uses
DataCollatorForSeq2Seq for HF (the padding collator that also pads labels). Tasks: cls =
all-MiniLM-L6-v2 on banking77 (full fine-tuning); sft = SmolLM2-135M-Instruct on the alpaca
demo, LoRA r=16 on all linear layers; sft-full = the same with full fine-tuning.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .common import alpaca as alpaca_rows
from .common import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
VARIANTS = ("hf-pad-max", "hf-dynamic", "hf-grouped", "ours")
# a variant may carry levers after "+" (ours+bf16, ours+nomalloc, hf-grouped+bf16), each measured
# alone against the same base. Ours: "no…"/"plain…" turn one of its default levers off, the others
# add one (the TrainConfig settings below). HF takes +bf16 (its bf16=True), +compile (its
# torch_compile=True: the Trainer compiles the model) and +malloc (the same
# glibc setting as ours, applied before its run: how much of a gap is only the allocator)
LEVERS = {"compile": {"compile": True}, "bf16": {"precision": "bf16"}, "auto": {"precision": "auto"},
          "foreach": {"adamw": "foreach"}, "loop": {"adamw": "loop"},
          "nofastdrop": {"fast_dropout": False}, "densegrads": {"sparse_embedding_grads": False},
          "nomalloc": {"malloc_reuse": False}, "plainloss": {"fused_lm_loss": False},
          "plainlora": {"fused_lora": False}, "window64": {"bucket_window": 64}}
HF_LEVERS = ("bf16", "compile", "malloc")


def split_variant(name: str) -> tuple[str, list[str]]:
    base, *levers = name.split("+")
    return base, levers


def lever_config(name: str) -> dict:
    out: dict = {"precision": "fp32"}  # plain ours runs fp32 like plain HF, whatever the default
    for lever in split_variant(name)[1]:
        out.update(LEVERS[lever])
    return out


# ---- data ---------------------------------------------------------------------------------
def banking(split: str, n: int, seed: int) -> list[dict]:
    with (DATA / "banking77" / f"{split}.csv").open(encoding="utf-8") as fh:
        rows = [{"record": {"text": r["text"], "label": r["category"]}} for r in csv.DictReader(fh)]
    random.Random(seed).shuffle(rows)
    return rows[:n] if n else rows


def alpaca(n_train: int | None, n_eval: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The alpaca demo as chat rows (common.alpaca), shuffled: the last ``n_eval`` are held out."""
    rows = alpaca_rows(10**9, seed)  # every row
    train = rows[:-n_eval]
    return (train[:n_train] if n_train else train), rows[-n_eval:]


def task_data(spec: dict) -> tuple[list[dict], list[dict]]:
    if spec["task"] == "cls":
        return banking("train", spec["n_train"], 0), banking("test", spec["n_eval"], 1)
    return alpaca(spec["n_train"], spec["n_eval"], 0)


# ---- measurements -------------------------------------------------------------------------
def matmul_peak_gflops(size: int = 1024, reps: int = 5, dtype: str = "fp32") -> float:
    import torch

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(size, size, dtype=kind), torch.randn(size, size, dtype=kind)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * size**3 / best / 1e9


def non_embedding_params(model) -> int:
    import torch

    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def flops_per_real_token(spec: dict, path, lengths: list[int], trainable: int) -> dict:
    """Model FLOPs per real token of a training step (forward + backward), see the docstring.

    These are the model's FLOPs (the usual MFU convention): ours skips the LM head on prompt
    tokens, so the work it really does per token is somewhat lower than the figure.

    Counted from the base model's shape (built on the meta device: no weights), the examples'
    real lengths and the run's trainable parameter count, so every variant gets the same figure.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    causal = spec["task"] != "cls"
    with torch.device("meta"):
        if causal:
            model = AutoModelForCausalLM.from_config(config)
        else:  # the classifier mean-pools: no pooler layer
            model = AutoModel.from_config(config, add_pooling_layer=False)
    matmul = non_embedding_params(model)
    if causal:  # the (tied) LM head is an embedding by type but a d x V matmul per token
        matmul += config.hidden_size * config.vocab_size
    if spec["method"] == "full":
        dense = 6 * matmul
    else:  # frozen weights: forward + input gradient only; LoRA weights: all three
        dense = 4 * matmul + 6 * trainable
    # a token attends to its own example only (packed or padded alike): n keys, or on
    # average (n + 1) / 2 under a causal mask
    keys = sum(n * ((n + 1) / 2 if causal else n) for n in lengths)
    attention = 12 * config.num_hidden_layers * config.hidden_size * keys / max(sum(lengths), 1)
    return {"flops_per_token": dense + attention, "dense_flops": dense, "attention_flops": attention,
            "matmul_params": matmul, "trainable_params": trainable}


# ---- one run (in a subprocess) --------------------------------------------------------------
def warm_imports(profile: str) -> None:
    """Import the model and tokenizer code both sides use before their clocks start.

    A library import is the process's one-time cost (a notebook has it done already), not part of
    a training call; HF's side imports its Trainer stack before ``t0``, so without this ours would
    pay transformers' model-module imports inside its span and HF would not.
    """
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto import modeling_auto

    from brewslm_core.train.base_model import resolve_model_path

    path = resolve_model_path("auto", profile)
    kind = type(AutoConfig.from_pretrained(path))
    for mapping in (modeling_auto.MODEL_MAPPING, modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING,
                    modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING):
        if kind in mapping:
            mapping[kind]  # resolving the class imports its module
    AutoTokenizer.from_pretrained(path)
    import peft  # noqa: F401  (LoRA on both sides)


def run_ours(spec: dict) -> dict:
    from brewslm_core import Project
    from brewslm_core.train import TrainConfig, train

    train_rows, eval_rows = task_data(spec)
    cfg = TrainConfig(
        task_profile="classification" if spec["task"] == "cls" else "seq2seq",
        method=spec["method"],
        lr=spec["lr"],
        batch_size=spec["batch"],
        max_length=spec["max_length"],
        max_steps=spec["steps"],
        epochs=spec["epochs"],
        threads=spec["threads"],
        seed=0,
        eval_max_rows=spec["n_eval"],
        lora_r=16,
        lora_alpha=32,
        **lever_config(spec["variant"]),
    )
    from brewslm_core.train import get_handler, read_trace
    from brewslm_core.train.base_model import resolve_model_path

    warm_imports(cfg.task_profile)
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "bench")
        # timed: the whole training call, rows in -> weights saved (tokenising, model build,
        # the loop, the save), the same span as HF's below; scoring happens after, untimed
        t0 = time.perf_counter()
        result = train(project, cfg, train_rows, None)
        seconds = time.perf_counter() - t0
        if result.status != "completed":
            raise RuntimeError(result.error)
        run_dir = Path(result.run_dir)
        plan = json.loads((run_dir / "plan.json").read_text())
        steps = read_trace(run_dir / "trace.jsonl", "train")
        path = resolve_model_path("auto", cfg.task_profile)
        handler = get_handler(cfg.task_profile)
        model = handler.restore(path, run_dir / "adapter", plan["handler_state"], cfg)
        ev = handler.score(model, eval_rows)
    real = sum(t["real_tokens"] for t in steps)
    tokens = sum(t["tokens"] for t in steps)
    # the lengths of the split it sampled from, encoded by the same handler (untimed)
    handler = get_handler(cfg.task_profile)
    handler.setup(path, train_rows, cfg)
    lengths = [e.length for e in handler.encode(train_rows) if e is not None]
    return {
        "real_tokens": real,
        "tokens": tokens,
        "seconds": seconds,
        "loop_seconds": real / result.real_tokens_per_s if result.real_tokens_per_s else None,
        "eval": ev,
        "final_train_loss": result.final_train_loss,
        **flops_per_real_token(spec, path, lengths, plan["params"]["trainable"]),
    }


def run_hf(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        DataCollatorForSeq2Seq,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from brewslm_core.train import TrainConfig, get_handler
    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.handlers import IGNORE

    torch.set_num_threads(spec["threads"])
    if "malloc" in split_variant(spec["variant"])[1]:
        from brewslm_core.train.speed import tune_malloc

        assert tune_malloc(), "glibc refused the allocator setting"
    profile = "classification" if spec["task"] == "cls" else "seq2seq"
    train_rows, eval_rows = task_data(spec)
    warm_imports(profile)
    # timed from here to the saved model: tokenising, model load, Trainer, train(), save_model
    t0 = time.perf_counter()
    path = resolve_model_path("auto", profile)
    cfg = TrainConfig(
        task_profile=profile, max_length=spec["max_length"], method=spec["method"], lora_r=16, lora_alpha=32
    )
    handler = get_handler(profile)  # same tokenisation and truncation as ours
    handler.setup(path, train_rows, cfg)
    examples = [e for e in handler.encode(train_rows) if e is not None]
    tok = handler.tokenizer
    if spec["task"] == "cls":
        cols = {"input_ids": [e.input_ids for e in examples], "labels": [e.target for e in examples]}
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(handler.labels), attn_implementation="sdpa"
        )
        pad = "max_length" if spec["variant"] == "hf-pad-max" else True
        inner = DataCollatorWithPadding(tok, padding=pad, max_length=spec["max_length"])
    else:
        labels = [[IGNORE] + list(e.target[:-1]) for e in examples]  # unshifted, HF shifts
        cols = {"input_ids": [e.input_ids for e in examples], "labels": labels}
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
        model.config.use_cache = False
        if spec["method"] == "lora":
            from brewslm_core.train.handlers.lora import adapt

            model = adapt(model, cfg, "all-linear")
        pad = "max_length" if spec["variant"] == "hf-pad-max" else True
        inner = DataCollatorForSeq2Seq(
            tok, padding=pad, max_length=spec["max_length"], label_pad_token_id=IGNORE
        )
    cols["attention_mask"] = [[1] * len(x) for x in cols["input_ids"]]
    cols["length"] = [len(x) for x in cols["input_ids"]]
    dataset = Dataset.from_dict(cols)
    counts = {"real": 0, "tokens": 0}

    def collate(features):
        features = [{k: v for k, v in f.items() if k != "length"} for f in features]
        batch = inner(features)
        counts["real"] += int(batch["attention_mask"].sum())
        counts["tokens"] += int(batch["attention_mask"].numel())
        return batch

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=spec["batch"],
            max_steps=spec["steps"],
            learning_rate=spec["lr"],
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            seed=0,
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            train_sampling_strategy=(
                "group_by_length" if split_variant(spec["variant"])[0] == "hf-grouped" else "random"
            ),
            bf16="bf16" in split_variant(spec["variant"])[1],  # CPU autocast in bf16, as ours
            torch_compile="compile" in split_variant(spec["variant"])[1],
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate)
        out = trainer.train()
        trainer.save_model(tmp)
        seconds = time.perf_counter() - t0
        model = trainer.model
    model.eval()
    if spec["task"] == "cls":
        ev_examples = [e for e in handler.encode(eval_rows) if e is not None]
        correct, loss_sum = 0, 0.0
        with torch.no_grad():
            for i in range(0, len(ev_examples), 64):
                part = ev_examples[i : i + 64]
                b = DataCollatorWithPadding(tok)([{"input_ids": e.input_ids} for e in part])
                logits = model(**b).logits
                gold = torch.tensor([e.target for e in part])
                correct += int((logits.argmax(-1) == gold).sum())
                loss_sum += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
        ev = {"n": len(ev_examples), "accuracy": correct / max(len(ev_examples), 1),
              "eval_loss": loss_sum / max(len(ev_examples), 1)}
    else:
        ev = handler.score(model, eval_rows)  # the same assistant-token loss as ours
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if spec["task"] == "cls":  # the HF head's pooler layer is not in ours (mean pooling)
        trainable -= sum(p.numel() for n, p in model.named_parameters() if ".pooler." in f".{n}")
    return {
        "real_tokens": counts["real"],
        "tokens": counts["tokens"],
        "seconds": seconds,
        "eval": ev,
        "final_train_loss": out.training_loss,
        **flops_per_real_token(spec, path, [e.length for e in examples], trainable),
    }


def run_one(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    result = run_ours(spec) if split_variant(spec["variant"])[0] == "ours" else run_hf(spec)
    result["peak_rss_mb"] = peak_rss_mb()
    result["threads_after"] = torch.get_num_threads()  # nothing in the run changed it
    return result


# ---- orchestration ----------------------------------------------------------------------------
CLS_TRAIN_ROWS = 10003  # banking77 train.csv
SFT_TRAIN_ROWS = 999 - 32  # the alpaca demo (999 rows) less the 32 held-out rows


def epoch_steps(rows: int, batch: int) -> int:
    return -(-rows // batch)


def specs(args) -> list[dict]:
    """Every variant samples its batches from the whole train split (``n_train`` None). The default
    span is one full epoch, so every variant trains every example once: over fewer steps the
    samplers draw different lengths (HF's length grouping trains its longest megabatch first, ours
    draws buckets at random), and tokens/s over a short span mostly measures that. ``--steps N``
    stops every run after N steps instead; --full runs 3 epochs."""
    out = []
    epochs = 1 if args.quick else 3
    for task in args.task.split(","):
        if task == "cls":
            base = {"task": "cls", "method": "full", "lr": 1e-4, "batch": 32, "max_length": 128,
                    "epochs": epochs, "n_train": None, "n_eval": 300 if args.quick else 3080}
            base["steps"] = args.steps or epochs * epoch_steps(CLS_TRAIN_ROWS, 32)
        elif task in ("sft", "sft-full"):
            full = task == "sft-full"
            base = {"task": task, "method": "full" if full else "lora",
                    "lr": 2e-5 if full else 2e-4, "batch": 4, "max_length": 256,
                    "n_train": None, "n_eval": 32, "epochs": epochs}
            base["steps"] = args.steps or epochs * epoch_steps(SFT_TRAIN_ROWS, 4)
        else:
            raise SystemExit(f"unknown task {task!r}: use cls, sft or sft-full")
        for variant in args.variants.split(","):
            name, levers = split_variant(variant)
            bad = [x for x in levers if x not in (LEVERS if name == "ours" else HF_LEVERS)]
            if name not in VARIANTS or bad:
                raise SystemExit(f"unknown variant {variant!r}: use {', '.join(VARIANTS)}, optionally with "
                                 f"+{'/+'.join(LEVERS)} (ours) or +{'/+'.join(HF_LEVERS)} (HF variants)")
            out.append({**base, "variant": variant, "threads": args.threads})
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", default=True)
    ap.add_argument("--full", dest="quick", action="store_false")
    ap.add_argument("--task", default="", help="cls, sft, sft-full (comma separated); default "
                    "cls,sft (quick) or cls,sft,sft-full (--full)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps per run")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--sft-full", action="store_true", help="add full-fine-tuning SFT (sft-full)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--json-out", help="also write the results here")
    ap.add_argument("--rounds", type=int, default=1, help="paired rounds: every variant once per round, "
                    "back to back, the order rotated by one each round; medians and spread are reported")
    args = ap.parse_args(argv)
    if not args.task:
        args.task = "cls,sft" if args.quick else "cls,sft,sft-full"
    if args.sft_full and "sft-full" not in args.task.split(","):
        args.task += ",sft-full"
    return args


def peak_dtype(variant: str) -> str:
    """The matmul peak a variant's MFU is measured against."""
    levers = split_variant(variant)[1]
    return "bf16" if "bf16" in levers or "auto" in levers else "fp32"


def finish(res: dict, peaks: dict) -> None:
    """bf16 variants' MFU is against the bf16 matmul peak, the others' against fp32."""
    peak = peaks[peak_dtype(res["variant"])]
    res["matmul_gflops"] = peak
    res["real_tok_s"] = res["real_tokens"] / res["seconds"]
    res["pad_share"] = 1 - res["real_tokens"] / max(res["tokens"], 1)
    res["mfu"] = res["flops_per_token"] * res["real_tok_s"] / (peak * 1e9)


def rotated(runs: list[dict], by: int) -> list[dict]:
    """Round ``by`` runs each task's variants in an order rotated ``by`` places: a shared box's
    speed drifts over minutes, and a fixed order would hand that drift to the same variant."""
    out: list[dict] = []
    for task in dict.fromkeys(r["task"] for r in runs):
        mine = [r for r in runs if r["task"] == task]
        k = by % len(mine)
        out += mine[k:] + mine[:k]
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one))), flush=True)
        return
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    import torch

    # the peak is measured with the runs' thread count, before and after every run: the best
    # sample counts, since the box may be shared and a busy moment only lowers it
    torch.set_num_threads(args.threads)

    # the bf16 peak only when a variant runs bf16: where the CPU emulates it (no AVX512-BF16/AMX)
    # one 1024^3 bf16 matmul takes seconds, and the sample would cost minutes per run
    dtypes = ("fp32", "bf16") if any(peak_dtype(s["variant"]) == "bf16" for s in specs(args)) else ("fp32",)

    def sample(old: dict | None = None) -> dict:
        new = {d: matmul_peak_gflops(dtype=d) for d in dtypes}
        return {d: max(new[d], (old or {}).get(d, 0.0)) for d in new}

    peak = sample()
    results = []
    for spec in [{**s, "round": r} for r in range(args.rounds) for s in rotated(specs(args), r)]:
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_train", "--one", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"{spec['task']}/{spec['variant']} failed:\n{proc.stderr[-3000:]}")
            continue
        res = {**spec, **json.loads(line[0][7:]), "wall_s": time.perf_counter() - t}
        peak = sample(peak)
        finish(res, peak)
        results.append(res)
        print(f"  done {spec['task']}/{spec['variant']} (round {spec['round']}): {res['real_tok_s']:.0f} "
              f"real tok/s in {res['wall_s']:.0f} s, eval "
              f"{ {k: v for k, v in res['eval'].items() if k in ('eval_loss', 'accuracy')} }", flush=True)
        if args.json_out:  # as it goes: a long run interrupted keeps what it measured
            Path(args.json_out).write_text(json.dumps(results, indent=2))
    peak = sample(peak)
    print(f"matmul peak ({args.threads} threads, best sample): "
          + ", ".join(f"{d} {v:.0f} GFLOP/s" for d, v in peak.items()))
    for res in results:
        finish(res, peak)
    if args.rounds > 1:
        summary(results)
    else:
        report(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


# "equal quality": ours against hf-grouped after the same steps on the same held-out rows
LOSS_TOLERANCE = 0.03  # relative eval loss
ACCURACY_TOLERANCE = 0.02  # absolute accuracy, or two standard errors of the difference if wider
GOAL = 1.2  # real tokens/s of ours over hf-grouped


def quality_verdict(ours: dict, base: dict) -> str:
    """Ours is "at equal quality" when it is no worse than hf-grouped beyond the tolerance;
    being better beyond it is said as such (a speed-up never bought with quality)."""
    a, b = ours["eval"], base["eval"]
    parts, worse, better = [], False, False
    if "eval_loss" in a and "eval_loss" in b:
        rel = (a["eval_loss"] - b["eval_loss"]) / b["eval_loss"]
        worse |= rel > LOSS_TOLERANCE
        better |= rel < -LOSS_TOLERANCE
        parts.append(f"eval loss {a['eval_loss']:.3f} vs {b['eval_loss']:.3f} ({100 * rel:+.1f}%, "
                     f"tolerance +-{100 * LOSS_TOLERANCE:.0f}%)")
    if "accuracy" in a and "accuracy" in b:
        diff = a["accuracy"] - b["accuracy"]
        # on a few hundred rows sampling noise alone moves accuracy by more than 0.02
        p, n = b["accuracy"], max(b.get("n", 1), 1)
        tol = max(ACCURACY_TOLERANCE, 2 * math.sqrt(2 * p * (1 - p) / n))
        worse |= diff < -tol
        better |= diff > tol
        parts.append(f"accuracy {a['accuracy']:.3f} vs {b['accuracy']:.3f} ({diff:+.3f}, "
                     f"tolerance +-{tol:.3f})")
    if not parts:
        return "equal quality vs hf-grouped: no common metric"
    verdict = "NO (worse)" if worse else ("yes (better)" if better else "yes")
    return f"equal quality vs hf-grouped: {verdict} ({'; '.join(parts)})"


def report(results: list[dict]) -> None:
    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        base = next((r for r in rows if r["variant"] == "hf-grouped"), None)
        first = rows[0]
        print(
            f"\n== {task}: {first['method']} fine-tuning, batch {first['batch']}, "
            f"{first['steps']} steps, {first['threads']} threads, matmul peak "
            f"{first['matmul_gflops']:.0f} GFLOP/s ({first['threads']} threads), "
            f"{first['flops_per_token'] / 1e6:.0f} MFLOP per real token "
            f"({first['attention_flops'] / first['flops_per_token']:.0%} attention) =="
        )
        changed = [f"{r['variant']} ran with {r['threads_after']}" for r in rows
                   if r.get("threads_after", r["threads"]) != r["threads"]]
        if changed:
            print(f"WARNING: not every variant kept {first['threads']} threads: {', '.join(changed)}")
        print(
            f"{'variant':<12}{'real tok/s':>11}{'x grouped':>10}{'pad %':>7}{'MFU %':>7}"
            f"{'peak MB':>9}{'train loss':>11}  eval (n={first['eval'].get('n', '?')})"
        )
        for r in rows:
            ratio = r["real_tok_s"] / base["real_tok_s"] if base else float("nan")
            ev = r["eval"]
            quality = f"loss {ev.get('eval_loss', float('nan')):.3f}"
            if "accuracy" in ev:
                quality += f", acc {ev['accuracy']:.3f}"
            print(
                f"{r['variant']:<12}{r['real_tok_s']:>11.0f}{ratio:>10.2f}"
                f"{100 * r['pad_share']:>7.1f}{100 * r['mfu']:>7.2f}{r['peak_rss_mb']:>9.0f}"
                f"{r['final_train_loss']:>11.3f}  {quality}"
            )
        ours = next((r for r in rows if r["variant"] == "ours"), None)
        if not ours:
            continue
        for name in ("hf-grouped", "hf-dynamic", "hf-pad-max"):
            other = next((r for r in rows if r["variant"] == name), None)
            if other:
                ratio = ours["real_tok_s"] / other["real_tok_s"]
                goal = f" (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})" if other is base else ""
                print(f"ours{'-full' if ours['method'] == 'full' and task != 'cls' else ''} vs "
                      f"{name}: {ratio:.2f}x real tokens/s{goal}")
        if base:
            print(quality_verdict(ours, base))


def baseline(name: str) -> str:
    """The HF variant a variant is compared with: hf-grouped at the same precision."""
    return "hf-grouped" + ("+bf16" if "bf16" in split_variant(name)[1] else "")


def hf_peers(name: str, names: Iterable[str]) -> list[str]:
    """The hf-grouped variants run at ``name``'s precision: the baseline and HF with its levers
    (HF at its best is the fastest of them)."""
    return [baseline(name)] + [n for n in names if split_variant(n)[0] == "hf-grouped"
                               and n != baseline(name) and peak_dtype(n) == peak_dtype(name)]


def _med(values: list[float]) -> str:
    import statistics

    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def summary(results: list[dict]) -> None:
    """Paired rounds: per variant the median (and min-max) real tokens/s, MFU and eval quality; per
    lever variant the median of its per-round ratio against hf-grouped of the same precision and
    against plain ours (the lever measured alone)."""
    import statistics

    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        first = rows[0]
        print(f"\n== {task}: {first['method']} fine-tuning, batch {first['batch']}, {first['steps']} steps, "
              f"{first['threads']} threads, {max(r['round'] for r in rows) + 1} paired rounds, matmul peak "
              f"{first['matmul_gflops']:.0f} GFLOP/s; median [min-max] ==")
        by: dict[str, dict[int, dict]] = {}
        for r in rows:
            by.setdefault(r["variant"], {})[r["round"]] = r
        for name, runs in by.items():
            rs = list(runs.values())
            ev = [r["eval"] for r in rs]
            quality = f"eval loss {_med([e['eval_loss'] for e in ev])}"
            if "accuracy" in ev[0]:
                quality += f", acc {_med([e['accuracy'] for e in ev])}"
            line = (f"{name:<18} real tok/s {_med([r['real_tok_s'] for r in rs])}  pad "
                    f"{100 * statistics.median(r['pad_share'] for r in rs):.1f}%  MFU "
                    f"{_med([100 * r['mfu'] for r in rs])}%  {quality}")
            base = split_variant(name)[0]
            for other in dict.fromkeys([*hf_peers(name, by), "ours"] if base == "ours" else []):
                if other == name or other not in by:
                    continue
                ratios = [runs[k]["real_tok_s"] / by[other][k]["real_tok_s"] for k in runs if k in by[other]]
                if ratios:
                    line += f"  x {other}: {_med(ratios)}"
            print(line)
        for name, runs in by.items():
            base = by.get(baseline(name))
            if base and split_variant(name)[0] == "ours":
                print(f"{name}: {quality_verdict(runs[max(runs)], base[max(base)])}")


if __name__ == "__main__":
    main()
