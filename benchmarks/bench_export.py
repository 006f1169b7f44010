"""GGUF export: file size and logit agreement per quantisation, against F16, in one run.

A 2-step LoRA SFT run of SmolLM2-135M on the alpaca demo is exported once as GGUF with every
Python quantisation (F16, Q8_0, Q5_1, Q5_0, Q4_1, Q4_0) and Q4_K_M (llama.cpp, recorded as
unavailable when llama-cpp-python is missing). Each file is read back by transformers'
``gguf_file=`` loader; its logits on held-out prompts are compared with the F16 file's (the
baseline measured in the same run) and with the source model's (fp32, LoRA merged).

    python -m benchmarks.bench_export [--prompts 8] [--quants f16,q8_0,q5_1,q5_0,q4_1,q4_0,q4_k_m]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SHARED_DATA = Path(
    os.environ.get("BREWSLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
ALL_QUANTS = "f16,q8_0,q5_1,q5_0,q4_1,q4_0,q4_k_m"


def _trained_run(root: Path) -> tuple[object, str, list[str]]:
    """(project, run_id, held-out prompts): alpaca demo rows, prepare, 2 LoRA steps."""
    from brewslm_core import Project
    from brewslm_core.mapping.shapes import text_hash
    from brewslm_core.mapping.store import append_commit
    from brewslm_core.prepare import prepare
    from brewslm_core.train.runner import train_project

    data = json.loads((SHARED_DATA / "instruct" / "llamafactory_alpaca_en_demo.json").read_text("utf-8"))
    data = sorted(data, key=lambda d: len(d["instruction"] + d["input"] + d["output"]))
    records = [{"messages": [{"role": "user", "content": d["instruction"] + ("\n\n" + d["input"] if d["input"]
                                                                              else "")},
                             {"role": "assistant", "content": d["output"]}]} for d in data[:16]]
    project = Project.create(root / "proj")
    rows = [{"import_id": "imp-1", "row_index": i, "shape": "alpaca", "task_profile": "seq2seq",
             "config_id": "cfg-bench", "text_hash": text_hash("alpaca", r), "record": r}
            for i, r in enumerate(records)]
    append_commit(project, rows, {"import_id": "imp-1", "config_id": "cfg-bench", "shape": "alpaca",
                                  "gold": False, "locator": "bench:alpaca"})
    prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=64)
    result = train_project(project, {"method": "lora", "lora_r": 4, "batch_size": 2, "max_steps": 2,
                                     "threads": 2, "lr": 1e-2})
    if result.status != "completed":
        raise RuntimeError(f"training failed: {result.error}")
    prompts = [d["instruction"] for d in data[40:]]  # not trained on
    return project, result.run_id, prompts


def main(argv: list[str] | None = None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brewslm_core.export import export
    from brewslm_core.export.smoke import compare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--quants", default=ALL_QUANTS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        project, run_id, prompts = _trained_run(Path(tmp))
        start = time.perf_counter()
        bundle = export(project, run_id, "gguf", args.quants)
        print(f"export of {len(args.quants.split(','))} variants: {time.perf_counter() - start:.1f} s "
              f"(incl. one transformers reload + smoke per variant)")
        root = Path(bundle.path)
        tok = AutoTokenizer.from_pretrained(root)
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                         add_generation_prompt=True) for p in prompts[: args.prompts]]
        ids = [tok(t, return_tensors="pt", add_special_tokens=False).input_ids for t in texts]
        smoke = {c["artifact"]: c for c in json.loads((root / "smoke.json").read_text())["checks"]}

        def logits_of(file: str) -> list:
            model = AutoModelForCausalLM.from_pretrained(root, gguf_file=file, dtype=torch.float32).eval()
            with torch.no_grad():
                return [model(input_ids=x).logits[0].float() for x in ids]

        f16_file = bundle.quantizations["F16"].file
        baseline = logits_of(f16_file)
        f16_size = (root / f16_file).stat().st_size
        positions = sum(int(x.shape[1]) for x in ids)
        print(f"{len(ids)} held-out chat prompts, {positions} positions; F16 {f16_size / 1e6:.1f} MB")
        header = (f"{'variant':8} {'status':11} {'MB':>7} {'size/F16':>8} | vs F16: {'corr':>8} {'top1':>6} "
                  f"{'maxabs':>7} | vs source (smoke): {'corr':>8} {'top1':>6} {'maxabs':>7}")
        print(header)
        for name in [q.strip().upper() for q in args.quants.split(",")]:
            variant = bundle.quantizations[name]
            if variant.file is None:
                print(f"{name:8} {variant.status:11} -- {variant.reason}")
                continue
            size = (root / variant.file).stat().st_size
            m = compare(baseline, logits_of(variant.file)) if name != "F16" else compare(baseline, baseline)
            s = smoke[variant.file]
            print(f"{name:8} {variant.status:11} {size / 1e6:7.1f} {size / f16_size:8.3f} | "
                  f"{m['correlation']:16.5f} {m['top1_agreement']:6.3f} {m['max_abs_diff']:7.3f} | "
                  f"{s['correlation']:27.5f} {s['top1_agreement']:6.3f} {s['max_abs_diff']:7.3f}")


if __name__ == "__main__":
    main()
