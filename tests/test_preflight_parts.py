"""Preflight's parts: the memory estimate and its suggestion, dependency versions, the launch
layouts for described machines, the CLI, and the gloo multi-process path the plan configures."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brewslm_core.contracts.preflight import HardwareInfo
from brewslm_core.preflight.deps import DependencyStatus, check_dependencies
from brewslm_core.preflight.launch import accelerate_config, choose_layout, launcher
from brewslm_core.preflight.memory import (
    CPU_FRAMEWORK_MB,
    ModelFacts,
    estimate_memory,
    suggest_fit,
)
from brewslm_core.train import TrainConfig

# SmolLM2-135M's architecture numbers (its config.json): 30 layers, hidden 576, MLP 1536,
# 9 heads, 3 KV heads, vocabulary 49,152, 134,515,008 parameters.
SMOL = ModelFacts(model_type="llama", kind="causal_lm", total_params=134_515_008,
                  trainable_params=134_515_008, layers=30, hidden=576, intermediate=1536,
                  heads=9, kv_heads=3, vocab=49_152, attention_dropout=False)


def facts_for(cfg: TrainConfig) -> ModelFacts:
    # LoRA r=16 on every linear of SmolLM2 trains 4,884,480 parameters (peft's count)
    return SMOL if cfg.method == "full" else dataclasses.replace(SMOL, trainable_params=4_884_480)


def cpu(**over) -> HardwareInfo:
    base = dict(cpu_cores=8, ram_total_mb=32_000, ram_available_mb=30_000, cuda_devices=(),
                bf16={"cpu": False}, fp16={"cpu": False}, mps=False, platform="Linux x86_64",
                torch_version="2.13.0")
    return HardwareInfo(**{**base, **over})


def gpus(n: int, total_mb: float = 24_000) -> tuple[dict, ...]:
    return tuple({"index": i, "name": "gpu", "total_mb": total_mb, "free_mb": total_mb,
                  "bf16": True, "fp16": True} for i in range(n))


# ---- memory estimate ----------------------------------------------------------------------
def test_full_fine_tuning_holds_weights_grads_and_two_adam_moments() -> None:
    cfg = TrainConfig(task_profile="seq2seq", method="full", batch_size=4, max_length=128)
    est = estimate_memory(SMOL, cfg, device="cpu", budget_mb=10_000)
    weights = 134_515_008 * 4 / 2**20
    assert est.weights_mb == pytest.approx(weights, abs=0.1)
    assert est.gradients_mb == pytest.approx(weights, abs=0.1)
    assert est.optimizer_mb == pytest.approx(2 * weights, abs=0.1)
    assert est.logits_mb == pytest.approx(3 * 4 * 128 * 49_152 * 4 / 2**20, abs=0.1)
    assert est.overhead_mb == CPU_FRAMEWORK_MB and est.fits
    parts = (est.weights_mb + est.gradients_mb + est.optimizer_mb + est.activations_mb
             + est.logits_mb + est.overhead_mb)
    assert est.total_mb == pytest.approx(parts, abs=0.5)


def test_activations_scale_with_tokens_and_shrink_under_autocast() -> None:
    cfg = TrainConfig(task_profile="seq2seq", method="lora", batch_size=4, max_length=128)
    one = estimate_memory(facts_for(cfg), cfg, device="cpu", budget_mb=1e9)
    two = estimate_memory(facts_for(cfg), dataclasses.replace(cfg, batch_size=8), device="cpu",
                          budget_mb=1e9)
    assert two.activations_mb == pytest.approx(2 * one.activations_mb, rel=1e-3)
    # the data's longest row caps the sequence the peak batch is sized for
    short = estimate_memory(facts_for(cfg), cfg, device="cpu", budget_mb=1e9, token_max=40)
    assert short.basis["seq_len"] == 40 and short.activations_mb < one.activations_mb / 3
    half = estimate_memory(facts_for(cfg), dataclasses.replace(cfg, precision="bf16"),
                           device="cpu", budget_mb=1e9)
    assert half.activations_mb < one.activations_mb
    gpu = estimate_memory(facts_for(cfg), cfg, device="cuda", budget_mb=1e9)
    assert gpu.overhead_mb != one.overhead_mb  # a CUDA context, not the CPU framework


def test_speech_models_pay_for_every_audio_frame() -> None:
    # whisper tiny.en: 4 encoder + 4 decoder layers, d_model 384, 1500 encoder frames
    whisper = ModelFacts(model_type="whisper", kind="speech_seq2seq", total_params=37_760_256,
                         trainable_params=294_912, layers=4, hidden=384, intermediate=1536,
                         heads=6, kv_heads=6, vocab=51_864, attention_dropout=False,
                         source_positions=1500, encoder_layers=4)
    cfg = TrainConfig(task_profile="audio_transcription", batch_size=4, max_length=32)
    est = estimate_memory(whisper, cfg, device="cpu", budget_mb=1e9)
    text_only = estimate_memory(dataclasses.replace(whisper, source_positions=0), cfg,
                                device="cpu", budget_mb=1e9)
    # 1500 frames per clip dwarf a 32-token transcript
    assert est.activations_mb > 20 * text_only.activations_mb
    assert est.basis["audio_frames_per_example"] == 1500


def test_suggestion_keeps_the_effective_batch_first_and_fits() -> None:
    cfg = TrainConfig(task_profile="seq2seq", method="full", batch_size=16, max_length=256)
    est = estimate_memory(SMOL, cfg, device="cpu", budget_mb=1e9)
    fixed = estimate_memory(SMOL, TrainConfig(task_profile="seq2seq", method="full",
                                              batch_size=1, max_length=256),
                            device="cpu", budget_mb=1e9)
    budget = (est.total_mb + fixed.total_mb) / 2  # full FT fits, but only with smaller batches
    changes, fitted = suggest_fit(facts_for, cfg, device="cpu", budget_mb=budget,
                                  token_max=None, precisions=[])
    assert set(changes) == {"batch_size", "grad_accum"}
    assert changes["batch_size"] * changes["grad_accum"] == 16
    assert fitted.fits and fitted.total_mb <= budget
    # below what full fine-tuning needs at batch 1: LoRA is the next change
    changes, fitted = suggest_fit(facts_for, cfg, device="cpu", budget_mb=fixed.total_mb - 50,
                                  token_max=None, precisions=[])
    assert changes["method"] == "lora" and fitted.total_mb <= fixed.total_mb - 50
    # under the framework's own footprint nothing fits
    assert suggest_fit(facts_for, cfg, device="cpu", budget_mb=CPU_FRAMEWORK_MB - 1,
                       token_max=None, precisions=["bf16"]) is None


# ---- dependencies -------------------------------------------------------------------------
def test_dependency_versions_are_compared_not_just_found() -> None:
    installed = {d.package: d for d in check_dependencies("classification", "lora", "minilm")}
    assert installed["peft"].ok and installed["peft"].blocking
    assert "scikit-learn" in installed and not installed["scikit-learn"].blocking
    torch_version = installed["torch"].installed
    too_new = DependencyStatus("torch", "999.0", torch_version, "training engine", True)
    assert not too_new.ok
    missing = DependencyStatus("no-such-package", "1.0", None, "x", True)
    assert not missing.ok and missing.fix() == "pip install 'no-such-package>=1.0'"
    full = {d.package for d in check_dependencies("seq2seq", "full", "smollm2")}
    assert "peft" not in full and {"gguf", "sacrebleu"} <= full


# ---- launch layouts -----------------------------------------------------------------------
def test_layouts_for_cpu_multi_gpu_multi_node_and_big_models() -> None:
    assert choose_layout("cpu", cpu(), {}, None)["kind"] == "single"
    multi_cpu = choose_layout("cpu", cpu(), {"processes": 4}, None)
    assert multi_cpu == {"kind": "multi-cpu", "device": "cpu", "processes": 4, "machines": 1,
                         "threads_per_process": 2}
    acc = accelerate_config(multi_cpu, "fp32", {})
    assert acc["distributed_type"] == "MULTI_CPU" and acc["use_cpu"]

    four = cpu(cuda_devices=gpus(4))
    ddp = choose_layout("cuda", four, {"num_machines": 2}, None)
    assert ddp["kind"] == "ddp" and ddp["processes"] == 8 and ddp["machines"] == 2
    acc = accelerate_config(ddp, "bf16", {"num_machines": 2, "main_process_ip": "10.0.0.1"})
    assert acc["distributed_type"] == "MULTI_GPU" and acc["mixed_precision"] == "bf16"
    assert acc["main_process_ip"] == "10.0.0.1" and not acc["use_cpu"]

    cfg = TrainConfig(task_profile="seq2seq", method="full")
    too_big = estimate_memory(SMOL, cfg, device="cuda", budget_mb=1_000)
    fsdp = choose_layout("cuda", four, {}, too_big)
    assert fsdp["kind"] == "fsdp"
    acc = accelerate_config(fsdp, "bf16", {}, "LlamaDecoderLayer")
    assert acc["distributed_type"] == "FSDP"
    assert acc["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert choose_layout("cuda", cpu(cuda_devices=gpus(1)), {}, None)["kind"] == "single"


@pytest.mark.slow
def test_the_cpu_layout_runs_two_gloo_processes(tmp_path: Path) -> None:
    """The plan's multi-CPU launcher starts two ranks; accelerate in each joins gloo."""
    runtime = {"processes": 2, "main_process_port": _free_port()}
    layout = choose_layout("cpu", cpu(cpu_cores=2), runtime, None)
    env, argv = launcher(layout, str(tmp_path / "unused.yaml"), runtime)
    assert argv[0] == "torchrun" and env["ACCELERATE_USE_CPU"] == "true"
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent("""
        import torch
        import torch.distributed as dist
        from accelerate import Accelerator

        state = Accelerator()
        value = torch.tensor([float(state.process_index + 1)])
        dist.all_reduce(value)
        print(f"rank {state.process_index}/{state.num_processes} "
              f"{dist.get_backend()} sum={value.item():g}", flush=True)
        # Leave together: a rank that exits while its peer's gloo socket is open makes the
        # peer abort ("connection closed by peer") after the real work is done.
        dist.barrier()
        dist.destroy_process_group()
    """))
    # the venv's torchrun, as ``python -m torch.distributed.run``
    cmd = [sys.executable, "-m", "torch.distributed.run", *argv[1:], str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, **env, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[:3000]
    # Both ranks share the pipe, so their lines can interleave: find each report, not each line.
    lines = sorted(re.findall(r"rank \d/\d \w+ sum=\d+", out.stdout))
    assert lines == ["rank 0/2 gloo sum=3", "rank 1/2 gloo sum=3"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- CLI ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_table_json_and_exit_codes(tmp_path: Path, shared_data: Path) -> None:
    from test_preflight import banking, commit

    from brewslm_core import Project
    from brewslm_core.cli import app
    from brewslm_core.prepare import prepare

    project = Project.create(tmp_path / "proj")
    commit(project, "b1", "classification", banking(shared_data, 120))
    prepare(project)
    runner = CliRunner()
    ok = runner.invoke(app, ["preflight", str(project.root), "--no-probe", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["passed"] and data["plan"]["probe"]["status"] == "skipped"
    assert Path(data["plan_path"]).is_file()

    blocked = runner.invoke(app, ["preflight", str(project.root), "--no-probe",
                                  "--max-memory-mb", "100", "--set", "batch_size=8"])
    assert blocked.exit_code == 1
    assert "blocker" in blocked.output and "memory_does_not_fit" in blocked.output
    assert "what to do" in blocked.output
    assert "[gates]" in blocked.output  # config names survive rich's markup

    opened = runner.invoke(app, ["preflight", str(project.root), "--no-probe", "--fail-open",
                                 "--max-memory-mb", "100"])
    assert opened.exit_code == 0 and "passed" in opened.output

    bad = runner.invoke(app, ["preflight", str(project.root), "--set", "nonsense=1"])
    assert bad.exit_code == 1 and "config_invalid" in bad.output
    assert "unknown train config keys ['nonsense']" in bad.output
    missing = runner.invoke(app, ["preflight", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a BrewSLM project" in missing.output
