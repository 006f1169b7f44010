"""The quality scripts and the training benchmark, each run end to end in a tiny mode, so they
cannot rot: the printed figures are checked to be there (their values belong to real runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_module(module: str, args: list[str], shared_data: Path, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "BREWSLM_SHARED_DATA": str(shared_data),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # the scripts must not depend on the working directory
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def figure(out: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)}: (-?[\d.]+)", out, re.MULTILINE)
    assert found, f"{name!r} missing from the output:\n{out}"
    return float(found.group(1))


def test_banking77_quality_script_prints_its_figures(shared_data, tmp_path):
    out = run_module(
        "benchmarks.quality_banking77",
        ["--max-train-rows", "96", "--max-test-rows", "48", "--epochs", "1", "--max-steps", "2",
         "--threads", "1", "--batch-size", "16", "--project", str(tmp_path / "p"),
         "--json-out", str(tmp_path / "fig.json")],
        shared_data,
        tmp_path,
    )
    assert "introspect classification" in out and "committed 10003" in out
    for name in ("accuracy", "macro_f1", "eval_loss", "train_seconds", "wall_seconds",
                 "real_tokens_per_s", "peak_rss_mb"):
        figure(out, name)
    assert 0.0 <= figure(out, "accuracy") <= 1.0
    assert figure(out, "steps") == 2
    assert re.search(r"^epoch [\d.]+ \(step 2\): accuracy", out, re.MULTILINE)
    assert "goal (>= 0.90 within 3 epochs):" in out
    saved = json.loads((tmp_path / "fig.json").read_text())
    assert saved["steps"] == 2 and saved["train_rows"] == 96
    # the run went through the project: its training event is on record
    from brewslm_core import Project

    events = Project.open(tmp_path / "p").events.list()
    assert {"dataset_import_run"} <= set(events["reason_code"].dropna())
    assert "training" in set(events["stage"])


def test_sft_quality_script_prints_base_and_tuned(shared_data, tmp_path):
    out = run_module(
        "benchmarks.quality_sft",
        ["--max-train-rows", "8", "--max-steps", "2", "--gen-rows", "2", "--max-new-tokens", "8",
         "--eval-fraction", "0.01", "--threads", "1", "--max-length", "128"],
        shared_data,
        tmp_path,
    )
    for name in ("eval_loss base", "eval_loss tuned", "final_train_loss", "train_seconds",
                 "wall_seconds", "real_tokens_per_s", "peak_rss_mb"):
        figure(out, name)
    assert figure(out, "steps") == 2
    assert re.search(r"^eval_loss lowered: (yes|no)$", out, re.MULTILINE)
    table = {m.group(1): m.group(2) for m in re.finditer(r"^(base|tuned)\s+([\d. ]+)$", out, re.MULTILINE)}
    assert set(table) == {"base", "tuned"}
    assert all(len(v.split()) == 5 for v in table.values())  # rougeL, chrf, 3 rates
    assert out.count("--- [") == 2 and out.count("\ntuned:") == 2


def test_bench_train_smoke_reports_ratios_mfu_and_quality(shared_data, tmp_path):
    out = run_module(
        "benchmarks.bench_train",
        ["--task", "cls", "--variants", "hf-grouped,ours", "--steps", "2", "--threads", "1",
         "--json-out", str(tmp_path / "r.json")],
        shared_data,
        tmp_path,
    )
    assert "ours vs hf-grouped:" in out and "goal >= 1.2x" in out
    assert "equal quality vs hf-grouped:" in out
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["variant"] for r in results] == ["hf-grouped", "ours"]
    # each variant draws its batches from the whole train split, as a real run does, so the
    # examples (and real tokens) differ between variants; each reports what it trained on
    assert all(r["real_tokens"] > 0 and r["flops_per_token"] > 0 for r in results)
    for r in results:
        assert 0 < r["mfu"] < 1 and r["threads"] == 1
        assert {"eval_loss", "accuracy"} <= set(r["eval"])


def test_bench_train_levers_prints_a_ratio_per_lever(shared_data, tmp_path):
    args = ["--reps", "2", "--threads", "1"]
    out = run_module("benchmarks.bench_train_levers", args, shared_data, tmp_path)
    found = re.findall(r"^(\w+)\s+before\s+([\d.]+) ms\s+lever\s+([\d.]+) ms\s+x ([\d.]+)", out, re.MULTILINE)
    assert [f[0] for f in found] == ["rows", "lora", "attention", "lm_loss"], out
    for _, before, lever, ratio in found:
        assert float(before) > 0 and float(lever) > 0
        assert float(ratio) == pytest.approx(float(before) / float(lever), rel=0.02)
