"""Shared pieces for the deploy tests: a project with a gold split, a real tiny trained run and its
real eval report (``trained_run``, ``promotable_report``); for the action tests, export bundles laid
out in the agreed manifest shape from the real SmolLM2 folder, eval reports, a LoRA adapter.

While the export and evaluate stages have not landed ``load_bundle``/``latest_report``, deploy
reads these on-disk shapes; the tests build them exactly as agreed in issue 10.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from test_train_rows import alpaca_rows

from brewslm_core.contracts.reasons import SHAPE_TASK_PROFILE
from brewslm_core.mapping.shapes import text_hash
from brewslm_core.mapping.store import append_commit

RUN_ID = "exp-deploytest"
# Questions SmolLM2-135M-Instruct answers at temperature 0 with the expected word (measured) but
# for the last one (it says Neptune): the gold pass rate starts below 1, so drift has room both ways.
# (The deploy tests of real trained runs use TRAINED_GOLD below.)
GOLD = [
    ("What is the capital of France?", "Paris"),
    ("What is 2 + 2?", "4"),
    ("How many days are in a week?", "7"),
    ("What is the opposite of hot?", "cold"),
    ("Name the largest planet in our solar system.", "Jupiter"),
]


# For trained_run(): after its 2 LoRA steps on the first alpaca rows (one translates into French),
# SmolLM2 still answers the first two with the expected word and misses the last (measured: it answers
# in French); three prompts keep every smoke/drift check cheap.
TRAINED_GOLD = [
    ("How many days are in a week?", "7"),
    ("What is the opposite of hot?", "cold"),
    ("What is the capital of France?", "Paris"),
]
LORA_LR = 1e-3
# every gold prompt answered, and a gold loss below a uniform guess over SmolLM2's 49152-token
# vocabulary (ln 49152 ≈ 10.8)
RELEASE_GATES = ("generated_n >= 3", "eval_loss <= 10")


def smollm2_dir() -> Path:
    from brewslm_core.models.smollm2 import ensure_converted

    return ensure_converted()


def _commit(project, import_id: str, records: list[dict], gold: bool) -> None:
    rows = [
        {
            "import_id": import_id,
            "row_index": i,
            "shape": "alpaca",
            "task_profile": SHAPE_TASK_PROFILE["alpaca"],
            "config_id": f"cfg-{import_id}",
            "text_hash": text_hash("alpaca", rec),
            "record": rec,
        }
        for i, rec in enumerate(records)
    ]
    append_commit(
        project,
        rows,
        {
            "import_id": import_id,
            "config_id": f"cfg-{import_id}",
            "shape": "alpaca",
            "gold": gold,
            "locator": f"test:{import_id}",
        },
    )


def gold_project(project, shared_data, gold: list[tuple[str, str]] = GOLD):
    """Alpaca rows for train/eval plus a gold import, through the real prepare()."""
    from brewslm_core.prepare import prepare

    _commit(project, "imp-train", [r["record"] for r in alpaca_rows(shared_data, 8)], gold=False)
    records = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in gold
    ]
    _commit(project, "imp-gold", records, gold=True)
    manifest = prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=64)
    assert manifest.counts["gold"] == len(gold)
    return project


def trained_run(project, lr: float = LORA_LR) -> str:
    """A real 2-step LoRA SFT run of SmolLM2 on the project's prepared rows (as tests/test_export.py
    trains it), at a learning rate that changes the logits but keeps the gold answers."""
    import torch

    from brewslm_core.train.runner import train_project

    torch.set_num_threads(2)
    result = train_project(project, {"method": "lora", "lora_r": 4, "batch_size": 2, "max_steps": 2,
                                     "threads": 2, "lr": lr})
    assert result.status == "completed", result.error
    return result.run_id


def promotable_report(project, run_id: str):
    """The real evaluate() of ``run_id`` on the gold split with a pack whose gates the run passes."""
    from brewslm_core.evaluate import evaluate

    (project.root / "evals").mkdir(exist_ok=True)
    pack = {"name": "release", "dataset": "gold", "gates": list(RELEASE_GATES)}
    (project.root / "evals" / "release.json").write_text(json.dumps(pack), encoding="utf-8")
    report = evaluate(project, run_id, "release")
    assert report.promotable, report.not_promotable_reason
    assert report.run_id == run_id and [g.passed for g in report.gates] == [True] * len(RELEASE_GATES)
    return report


def _link_tree(src: Path, dst: Path) -> list[dict]:
    """Symlink every file of ``src`` into ``dst`` (no 500 MB copies in tests); the file list."""
    dst.mkdir(parents=True, exist_ok=True)
    files = []
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            (dst / f.name).symlink_to(f.resolve())
            files.append(f)
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lay_out_export(
    project,
    export_id: str,
    model_src: Path,
    *,
    fmt: str = "vllm",
    run_id: str = RUN_ID,
    adapter_src: Path | None = None,
) -> Path:
    """``exports/<export_id>/`` as the export stage writes it (manifest schema 1): ``model/``
    (+ ``adapter/``), manifest.json with the serve block and its vLLM command, smoke.json."""
    bundle = project.exports_dir / export_id
    listed = [("model/" + f.name, f) for f in _link_tree(model_src, bundle / "model")]
    if adapter_src is not None:
        listed += [("adapter/" + f.name, f) for f in _link_tree(adapter_src, bundle / "adapter")]
    base_name = "base" if adapter_src is not None else run_id
    command = [
        "python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "model",
        "--served-model-name",
        base_name,
        "--dtype",
        "bfloat16",
        "--enforce-eager",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
    ]
    if adapter_src is not None:
        rank = json.loads((adapter_src / "adapter_config.json").read_text())["r"]
        command += [
            "--enable-lora",
            "--max-lora-rank",
            str(max(8, rank)),
            "--lora-modules",
            f"{run_id}=adapter",
        ]
    serve = {
        "kind": "causal_lm",
        "model_dir": "model",
        "adapter_dir": "adapter" if adapter_src else None,
        "served_model_name": run_id,
        "command": command,
        "env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
        "notes": ["laid out by the deploy tests"],
    }
    (bundle / "smoke.json").write_text(json.dumps({"prompts": [], "checks": []}), encoding="utf-8")
    listed.append(("smoke.json", bundle / "smoke.json"))
    manifest = {
        "schema_version": 1,
        "export_id": export_id,
        "format": fmt,
        "source_run": run_id,
        "task_profile": "seq2seq",
        "base_model": {"name": "smollm2", "path": str(model_src)},
        "files": [{"path": rel, "size": f.stat().st_size, "sha256": _sha256(f)} for rel, f in listed],
        "quantizations": {},
        "lineage": {"manifest_sha256": None, "config_ids": ["cfg-imp-train"]},
        "serve": serve,
        "not_applicable": {},
        "created_at": datetime.now(UTC).isoformat(),
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return bundle


def write_report(project, run_id: str = RUN_ID, *, promotable: bool, eval_id: str | None = None):
    """An EvalReport (the evaluate stage's own contract) saved where ``latest_report`` reads it:
    one gate that passes or fails. For runs laid out by hand, which ``evaluate()`` cannot score."""
    from brewslm_core.evaluate import EvalReport, GateResult

    eval_id = eval_id or f"eval-{'ok' if promotable else 'no'}{datetime.now(UTC):%H%M%S%f}"
    value = 90.0 if promotable else 20.0
    out = project.runs_dir / run_id / "evals" / eval_id
    report = EvalReport(
        eval_id=eval_id,
        run_id=run_id,
        pack="default",
        task_profile="seq2seq",
        scoring_mode="bleu_rouge",
        dataset={"kind": "split", "name": "gold"},
        metrics={"chrf": value},
        gates=(GateResult(metric="chrf", op=">=", threshold=50.0, value=value, passed=promotable),),
        pass_rate=value / 100,
        promotable=promotable,
        not_promotable_reason=None if promotable else "gate chrf >= 50 failed (20.0)",
        failure_clusters=(),
        n_examples=5,
        judge=None,
        warnings=(),
        seconds=0.0,
        created_at=datetime.now(UTC).isoformat(),
        path=str(out),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict()), encoding="utf-8")
    return report


def make_adapter(base_dir: Path, out: Path, rank: int = 8) -> Path:
    """A real peft LoRA adapter on SmolLM2 (non-zero B, so it changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(out)
    return out


def perturbed_model(base_dir: Path, out: Path, scale: float = 0.5) -> Path:
    """SmolLM2 with noise on every weight matrix: a real model that no longer answers the gold set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.add_(torch.randn_like(p) * p.std() * scale)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out
