"""Quality run: SmolLM2-135M-Instruct SFT on the alpaca demo through the product path.

    python -m benchmarks.quality_sft                          # LoRA r=16, 384 train rows, 1 pass
    python -m benchmarks.quality_sft --method full --lr 2e-5
    python -m benchmarks.quality_sft --max-train-rows 64 --max-steps 2 --gen-rows 2   # smoke

A project is made; the alpaca demo JSON is described, introspected, dry-run mapped, committed and
prepared (prepare's eval split is the held-out set); ``train_project`` trains on the manifest.
The base model and the tuned one (loaded back from the run's adapter folder) are scored on the
same held-out rows through the handler's ``score()`` (assistant-token loss) and answer the same
held-out instructions greedily. "Answers the instruction" is measured against the reference
answer with ROUGE-L F1 (rouge-score) and chrF (sacrebleu), plus three sanity rates: non-empty,
not an echo of the prompt, and stopped (end-of-turn token before the token limit).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from .quality_banking77 import DATA, import_source, peak_rss_mb, quiet, read_trace

RECIPE = {"method": "lora", "lr": 5e-4, "lora_r": 16, "batch_size": 4, "max_length": 256,
          "max_train_rows": 384, "warmup": 0.05}
ECHO_ROUGE = 0.8  # a generation this close to the prompt (ROUGE-L F1) repeats it, not answers it
SHOWN = 6  # generations printed side by side


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default=RECIPE["method"], choices=("full", "lora"))
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--lora-r", type=int, default=RECIPE["lora_r"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--max-length", type=int, default=RECIPE["max_length"])
    ap.add_argument("--warmup", type=float, default=RECIPE["warmup"], help="share of steps")
    ap.add_argument("--max-train-rows", type=int, default=RECIPE["max_train_rows"],
                    help="train on this many rows per epoch (steps = rows / batch); 0 = all")
    ap.add_argument("--max-steps", type=int, default=0, help="cap the optimizer steps (smoke runs)")
    ap.add_argument("--eval-fraction", type=float, default=0.05, help="prepare's held-out share")
    ap.add_argument("--gen-rows", type=int, default=12, help="held-out instructions to answer")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--project", help="keep the project here (default: a temporary folder)")
    ap.add_argument("--json-out", help="also write the figures here")
    return ap.parse_args(argv)


def answer(handler: Any, model: Any, messages: list[dict], max_new_tokens: int) -> tuple[str, bool]:
    """Greedy answer and whether it ended on the end-of-turn token before the limit."""
    import torch

    tok = handler.tokenizer
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    new = out[0, ids.shape[1]:].tolist()
    stopped = tok.eos_token_id in new
    return tok.decode(new, skip_special_tokens=True).strip(), stopped


def answer_measures(outputs: list[tuple[str, bool]], prompts: list[str], refs: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import CHRF

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    texts = [t for t, _ in outputs]
    rouge = [scorer.score(ref, text)["rougeL"].fmeasure for ref, text in zip(refs, texts, strict=True)]
    echo = [bool(t) and (t in p or scorer.score(p, t)["rougeL"].fmeasure >= ECHO_ROUGE)
            for p, t in zip(prompts, texts, strict=True)]
    n = max(len(texts), 1)
    return {
        "rougeL_f1": sum(rouge) / n,
        "chrf": CHRF().corpus_score(texts, [refs]).score,
        "non_empty": sum(bool(t) for t in texts) / n,
        "not_echo": 1 - sum(echo) / n,
        "stopped": sum(s for _, s in outputs) / n,
    }


def load_tuned(base_path: Path, adapter_dir: Path) -> Any:
    """The trained model as a later stage would load it: base + LoRA adapter, or full weights."""
    import torch
    from transformers import AutoModelForCausalLM

    if (adapter_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        return PeftModel.from_pretrained(base, adapter_dir).eval()
    return AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=torch.float32).eval()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    if args.project:
        return run(args, Path(args.project))
    with tempfile.TemporaryDirectory() as tmp:
        return run(args, Path(tmp) / "sft")


def run(args: argparse.Namespace, root: Path) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    from brewslm_core import Project
    from brewslm_core.prepare import prepare
    from brewslm_core.train import get_handler
    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.runner import config_from_manifest, train_project

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    project = Project.create(root, project={"name": "quality-sft"})
    locator = f"json:{DATA / 'instruct' / 'llamafactory_alpaca_en_demo.json'}"
    import_source(project, locator, "alpaca")
    manifest = prepare(project, task_profile="seq2seq", eval_fraction=args.eval_fraction,
                       max_length=args.max_length, seed=args.seed)
    held_out = manifest.read_split(project, "eval")
    n_train = manifest.counts["train"]
    print(f"prepare: {manifest.counts}, max_length {manifest.max_length}")

    rows_per_epoch = min(args.max_train_rows or n_train, n_train)
    steps = math.ceil(rows_per_epoch / args.batch_size) * args.epochs
    if args.max_steps:
        steps = min(steps, args.max_steps)
    overrides = {
        "method": args.method, "lr": args.lr, "lora_r": args.lora_r, "lora_alpha": 2 * args.lora_r,
        "epochs": args.epochs, "max_steps": steps, "batch_size": args.batch_size,
        "max_length": args.max_length, "warmup_steps": round(args.warmup * steps),
        "threads": args.threads, "seed": args.seed, "eval_max_rows": len(held_out),
    }
    cfg = config_from_manifest(manifest, overrides)
    base_path = resolve_model_path(cfg.base, cfg.task_profile)
    handler = get_handler("seq2seq")
    handler.setup(base_path, [], cfg)  # the same tokenisation and truncation as the run

    gen_rows = held_out[: args.gen_rows]
    prompts = [r["record"]["messages"][:-1] for r in gen_rows]
    prompt_text = [m[-1]["content"] for m in prompts]
    refs = [r["record"]["messages"][-1]["content"] for r in gen_rows]

    def judge(model: Any) -> tuple[dict, list[tuple[str, bool]], float]:
        t = time.perf_counter()
        outs = [answer(handler, model, p, args.max_new_tokens) for p in prompts]
        return answer_measures(outs, prompt_text, refs), outs, time.perf_counter() - t

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    base_eval = handler.score(base, held_out)
    base_judge, base_outs, base_gen_s = judge(base)
    del base
    print(f"base: held-out loss {base_eval['eval_loss']:.4f} on {base_eval['n']} rows; "
          f"generation {base_gen_s:.0f} s", flush=True)

    print(f"train: {steps} steps x batch {args.batch_size} of {n_train} train rows; config "
          + json.dumps({k: overrides[k] for k in ("method", "lr", "lora_r", "max_length", "warmup_steps",
                                                  "threads")}), flush=True)
    result = train_project(project, overrides)
    if result.status != "completed":
        print(f"training {result.status}: {result.error}")
        return 1
    tuned = load_tuned(base_path, Path(result.adapter_dir))
    tuned_eval = handler.score(tuned, held_out)  # the reloaded adapter, not the in-run model
    tuned_judge, tuned_outs, _ = judge(tuned)
    train_steps = read_trace(result.run_dir, "train")
    real = sum(t["real_tokens"] for t in train_steps)

    print("\n== generations on held-out instructions (greedy) ==")
    for i in range(min(SHOWN, len(gen_rows))):
        print(f"\n--- [{i + 1}] instruction: {prompt_text[i][:300]!r}")
        print(f"reference: {refs[i][:300]!r}")
        print(f"base:      {base_outs[i][0][:300]!r}")
        print(f"tuned:     {tuned_outs[i][0][:300]!r}")

    figures = {
        "recipe": {k: overrides[k] for k in ("method", "lr", "lora_r", "batch_size", "max_length",
                                             "warmup_steps", "threads", "max_steps")},
        "train_rows_seen": sum(t["samples"] for t in train_steps),
        "held_out_rows": base_eval["n"],
        "base_eval_loss": base_eval["eval_loss"],
        "tuned_eval_loss": tuned_eval["eval_loss"],
        "in_run_eval_loss": (result.eval or {}).get("eval_loss"),
        "base": base_judge,
        "tuned": tuned_judge,
        "gen_rows": len(gen_rows),
        "steps": result.steps,
        "final_train_loss": result.final_train_loss,
        "train_seconds": real / result.real_tokens_per_s if result.real_tokens_per_s else 0.0,
        "real_tokens_per_s": result.real_tokens_per_s,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(f"\n== SFT quality: SmolLM2-135M-Instruct, {args.method}, held-out alpaca rows ==")
    print(f"held-out rows: {figures['held_out_rows']}; train rows seen: {figures['train_rows_seen']}")
    print(f"eval_loss base: {figures['base_eval_loss']:.4f}")
    print(f"eval_loss tuned: {figures['tuned_eval_loss']:.4f}")
    print(f"eval_loss lowered: {'yes' if figures['tuned_eval_loss'] < figures['base_eval_loss'] else 'no'}")
    print(f"answers on {len(gen_rows)} held-out instructions (max {args.max_new_tokens} new tokens):")
    print(f"{'':<8}{'rougeL_f1':>10}{'chrf':>7}{'non_empty':>10}{'not_echo':>9}{'stopped':>8}")
    for name, j in (("base", base_judge), ("tuned", tuned_judge)):
        print(f"{name:<8}{j['rougeL_f1']:>10.3f}{j['chrf']:>7.1f}{j['non_empty']:>10.2f}"
              f"{j['not_echo']:>9.2f}{j['stopped']:>8.2f}")
    print(f"final_train_loss: {figures['final_train_loss']:.4f}")
    print(f"steps: {figures['steps']}")
    print(f"train_seconds: {figures['train_seconds']:.1f}")
    print(f"wall_seconds: {figures['wall_seconds']:.1f}")
    print(f"real_tokens_per_s: {figures['real_tokens_per_s']:.0f}")
    print(f"peak_rss_mb: {figures['peak_rss_mb']:.0f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
