"""Memory-fit estimate vs measured peak RSS, through the real engine.

    python -m benchmarks.bench_memory_fit [--size small|medium] [--only NAME]

Each configuration trains in a fresh subprocess (the real ``train()`` on real rows from
../shared/data) for one full epoch, so the batch with the longest rows (the one the estimate is
sized for) is among the steps; the child reports its peak RSS (``ru_maxrss``). The baseline is
the same child that imports the stack and stops before training (the framework alone). Printed:
the estimate, the measured peak, their ratio (goal: within 0.75-1.25), and both above baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))

# name -> (task profile, TrainConfig overrides, rows per size)
CONFIGS: dict[str, tuple[str, dict, dict[str, int]]] = {
    "minilm-cls-lora": ("classification",
                        {"method": "lora", "batch_size": 32, "max_length": 64, "lr": 1e-3},
                        {"small": 128, "medium": 512}),
    "minilm-cls-full": ("classification",
                        {"method": "full", "batch_size": 32, "max_length": 64, "lr": 1e-4},
                        {"small": 128, "medium": 512}),
    "smollm2-sft-lora": ("seq2seq",
                         {"method": "lora", "batch_size": 4, "max_length": 64, "lr": 1e-4},
                         {"small": 16, "medium": 48}),
}


# ---- data (real rows, shaped as prepare writes them) ----------------------------------------
def banking_rows(n: int) -> list[dict]:
    import csv

    with open(SHARED / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        by_label: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by_label.setdefault(r["category"], []).append(r["text"])
    labels = sorted(by_label)[:8]
    out = []
    for i in range(10_000):
        for label in labels:
            if i < len(by_label[label]) and len(out) < n:
                out.append({"record": {"text": by_label[label][i], "label": label}})
        if len(out) >= n:
            return out
    return out


def alpaca_rows(n: int) -> list[dict]:
    data = json.loads((SHARED / "instruct" / "llamafactory_alpaca_en_demo.json").read_text("utf-8"))
    out = []
    for d in data[:n]:
        user = d["instruction"] + ("\n\n" + d["input"] if d["input"] else "")
        out.append({"record": {"messages": [{"role": "user", "content": user},
                                            {"role": "assistant", "content": d["output"]}]}})
    return out


def token_max(profile: str, rows: list[dict], max_length: int) -> int:
    """Longest row in tokens, measured as prepare's token stats would (the planned tokenizer)."""
    from brewslm_core.train import TrainConfig, get_handler
    from brewslm_core.train.base_model import resolve_model_path

    handler = get_handler(profile)
    cfg = TrainConfig(task_profile=profile, max_length=max_length)
    handler.setup(resolve_model_path("auto", profile), rows, cfg)
    return max(e.length for e in handler.encode(rows) if e is not None)


# ---- the child: one configuration in a fresh process --------------------------------------
def child(name: str, size: str, baseline: bool) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: F401 - the framework the estimate's overhead covers
    import transformers  # noqa: F401

    from brewslm_core import Project
    from brewslm_core.train import TrainConfig, train

    profile, over, sizes = CONFIGS[name]
    rows = banking_rows(sizes[size]) if profile == "classification" else alpaca_rows(sizes[size])
    peak = peak_rss_mb()
    if baseline:
        print(json.dumps({"peak_mb": peak}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "proj")
        cfg = TrainConfig(task_profile=profile, epochs=1, threads=2, **over)
        t0 = time.perf_counter()
        result = train(project, cfg, rows, None)
        seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "status": result.status, "steps": result.steps,
                      "seconds": seconds, "error": result.error}))


def run_child(name: str, size: str, baseline: bool = False) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory_fit", "--child", name, "--size", size]
    if baseline:
        cmd.append("--baseline")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{name} child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---- the parent: estimate, measure, compare -------------------------------------------------
def estimate(name: str, size: str):
    from brewslm_core.models import materialize, resolve_base
    from brewslm_core.preflight import estimate_memory, model_facts
    from brewslm_core.train import TrainConfig

    profile, over, sizes = CONFIGS[name]
    rows = banking_rows(sizes[size]) if profile == "classification" else alpaca_rows(sizes[size])
    cfg = TrainConfig(task_profile=profile, epochs=1, **over)
    ref = resolve_base("auto", profile)
    ref = type(ref)(**{**ref.to_dict(), "path": materialize(ref)})
    n_labels = len({r["record"].get("label") for r in rows}) if profile == "classification" else 2
    facts = model_facts(ref, cfg, n_labels)
    return estimate_memory(facts, cfg, device="cpu", budget_mb=1e9,
                           token_max=token_max(profile, rows, cfg.max_length))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("small", "medium"), default="small")
    ap.add_argument("--only", choices=sorted(CONFIGS), default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.baseline)
        return
    names = [args.only] if args.only else list(CONFIGS)
    base = run_child(names[0], args.size, baseline=True)["peak_mb"]
    print(f"baseline (python + torch + transformers + our packages, no model): {base:,.0f} MB")
    header = (f"{'config':18} {'estimate MB':>11} {'measured MB':>11} {'ratio':>6} "
              f"{'est-base':>9} {'meas-base':>9} {'steps':>5} {'s':>6}  parts (w/g/o/act/logits)")
    print(header)
    ratios = []
    for name in names:
        est = estimate(name, args.size)
        got = run_child(name, args.size)
        if got.get("status") != "completed":
            print(f"{name}: training did not complete: {got.get('error')}")
            continue
        ratio = est.total_mb / got["peak_mb"]
        ratios.append(ratio)
        parts = "/".join(f"{x:,.0f}" for x in (est.weights_mb, est.gradients_mb, est.optimizer_mb,
                                                 est.activations_mb, est.logits_mb))
        print(f"{name:18} {est.total_mb:>11,.0f} {got['peak_mb']:>11,.0f} {ratio:>6.2f} "
              f"{est.total_mb - base:>9,.0f} {got['peak_mb'] - base:>9,.0f} {got['steps']:>5} "
              f"{got['seconds']:>6.1f}  {parts}")
    inside = sum(0.75 <= r <= 1.25 for r in ratios)
    print(f"within +-25%: {inside}/{len(ratios)}")
    print(f"parent peak RSS: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
