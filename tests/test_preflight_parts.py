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
from brewslm_core.preflight.launch import (
    accelerate_config,
    choose_layout,
    config_yaml,
    launch_command,
    launcher,
)
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
    # accelerate's multi-process launcher (use_cpu would start one process without mpirun)
    assert acc["distributed_type"] == "MULTI_GPU" and not acc["use_cpu"]

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


def test_cpu_fsdp_layout_config_and_launch_command(tmp_path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    runtime = {"processes": 2, "fsdp": True, "main_process_port": 29611}
    layout = choose_layout("cpu", cpu(cpu_cores=2), runtime, None)
    assert layout == {"kind": "fsdp", "device": "cpu", "processes": 2, "machines": 1,
                      "threads_per_process": 1}
    # one process has nothing to shard across: a plain single-process run
    assert choose_layout("cpu", cpu(), {"fsdp": True}, None)["kind"] == "single"
    acc = accelerate_config(layout, "fp32", runtime, "BertLayer")
    assert acc["distributed_type"] == "FSDP" and not acc["use_cpu"]
    assert acc["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "BertLayer"
    assert acc["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    # the file is one accelerate reads back, with the fields its launcher uses
    path = tmp_path / "accelerate.yaml"
    path.write_text(config_yaml(acc), encoding="utf-8")
    read = ClusterConfig.from_yaml_file(str(path))
    assert (read.num_processes, read.num_machines, read.main_process_port) == (2, 1, 29611)
    assert read.distributed_type == "FSDP" and read.use_cpu is False
    command = launch_command("/p", "exp-1", str(path), layout, {"max_steps": 2}, runtime)
    assert command.startswith("ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 accelerate launch "
                              f"--config_file {path} --num_cpu_threads_per_process 1 -m ")
    assert "--set fsdp=true" in command and "--set max_steps=2" in command

    # several machines: the rank, address and port of the rendezvous come from [runtime]
    two = {"processes": 2, "num_machines": 2, "machine_rank": 1, "main_process_ip": "10.0.0.5",
           "main_process_port": 29700, "fsdp": True}
    layout = choose_layout("cpu", cpu(cpu_cores=2), two, None)
    assert (layout["processes"], layout["machines"]) == (4, 2)
    acc = accelerate_config(layout, "fp32", two)
    assert (acc["machine_rank"], acc["main_process_ip"], acc["main_process_port"]) == (
        1, "10.0.0.5", 29700)
    assert accelerate_config(choose_layout("cpu", cpu(), {}, None), "fp32", {})["use_cpu"]


def test_fsdp_divides_weights_grads_and_optimizer_state_per_rank_not_activations() -> None:
    # SmolLM2: 30 decoder layers hold 106,202,880 parameters (3,540,096 each); the tied
    # embedding and the final norm hold the rest
    facts = dataclasses.replace(SMOL, block_params=106_202_880, block_trainable=106_202_880)
    cfg = TrainConfig(task_profile="seq2seq", method="full", batch_size=4, max_length=128)
    one = estimate_memory(facts, cfg, device="cpu", budget_mb=1e9)
    four = estimate_memory(facts, cfg, device="cpu", budget_mb=1e9, shards=4)
    rest = (134_515_008 - 106_202_880) * 4 / 2**20
    blocks = 106_202_880 * 4 / 2**20
    # a rank holds the replicated rest, its quarter of the blocks and two gathered blocks
    assert four.weights_mb == pytest.approx(rest + blocks / 4 + blocks * 2 / 30, abs=0.1)
    assert four.optimizer_mb == pytest.approx(2 * (rest + blocks / 4), abs=0.1)
    assert four.activations_mb == one.activations_mb and four.logits_mb == one.logits_mb
    assert four.total_mb < one.total_mb and four.basis["fsdp_shards"] == 4
    budget = (one.total_mb + four.total_mb) / 2
    assert not estimate_memory(facts, cfg, device="cpu", budget_mb=budget).fits
    assert estimate_memory(facts, cfg, device="cpu", budget_mb=budget, shards=4).fits
    # every rank builds the whole model before sharding it: with LoRA, that is the peak
    lora = dataclasses.replace(facts_for(TrainConfig(method="lora")), block_params=106_202_880,
                               block_trainable=4_884_480)
    small = TrainConfig(task_profile="seq2seq", method="lora", batch_size=1, max_length=16)
    est = estimate_memory(lora, small, device="cpu", budget_mb=1e9, shards=8)
    assert est.total_mb == pytest.approx(134_515_008 * 4 / 2**20 + CPU_FRAMEWORK_MB, abs=0.1)
    # without block counts (an architecture with no blocks) nothing is sharded
    assert estimate_memory(SMOL, cfg, device="cpu", budget_mb=1e9, shards=4).total_mb \
        == one.total_mb


@pytest.mark.slow
def test_the_cpu_layout_runs_two_gloo_processes(tmp_path: Path) -> None:
    """The plan's multi-CPU launch (accelerate reading the plan's config file) starts two
    ranks; accelerate in each joins gloo."""
    runtime = {"processes": 2, "main_process_port": _free_port()}
    layout = choose_layout("cpu", cpu(cpu_cores=2), runtime, None)
    config = tmp_path / "accelerate.yaml"
    config.write_text(config_yaml(accelerate_config(layout, "fp32", runtime)), encoding="utf-8")
    env, argv = launcher(layout, str(config), runtime)
    assert argv[:2] == ["accelerate", "launch"] and env["ACCELERATE_USE_CPU"] == "true"
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
    # the venv's accelerate
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *argv[2:], str(script)]
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


def test_block_counts_come_from_the_models_own_blocks() -> None:
    """MiniLM on the meta device: its BertEmbeddings + BertLayer modules, counted directly."""
    import torch
    from transformers import AutoConfig, AutoModel

    from brewslm_core.models.resolve import resolve_base
    from brewslm_core.preflight.memory import model_facts

    ref = resolve_base("auto", "classification")
    with torch.device("meta"):
        bert = AutoModel.from_config(AutoConfig.from_pretrained(ref.path))
    in_blocks = sum(p.numel() for m in [bert.embeddings, *bert.encoder.layer] for p in m.parameters())
    full = model_facts(ref, TrainConfig(method="full"), n_labels=4)
    assert set(full.no_split_modules) == {"BertEmbeddings", "BertLayer"}  # order varies
    assert full.block_params == full.block_trainable == in_blocks
    assert 0.9 * full.total_params < in_blocks < full.total_params  # pooler and head stay out
    lora = model_facts(ref, TrainConfig(method="lora"), n_labels=4)
    # LoRA: the adapters sit inside the blocks; frozen weights are sharded too
    assert lora.block_params > in_blocks and 0 < lora.block_trainable < lora.trainable_params


def _runtime(project, **values) -> None:
    # a new dict: Project.create shares nested config tables with its defaults
    project.config = {**project.config, "runtime": {**project.config["runtime"], **values}}
    project.save_config()


@pytest.mark.slow
def test_preflight_suggests_fsdp_when_only_sharded_ranks_fit(tmp_path: Path, shared_data: Path) -> None:
    from test_preflight import banking, commit

    from brewslm_core import Project
    from brewslm_core.preflight import preflight
    from brewslm_core.prepare import prepare

    project = Project.create(tmp_path / "proj")
    commit(project, "b1", "classification", banking(shared_data, 64))
    prepare(project)
    config = {"method": "full", "batch_size": 8, "max_length": 64}
    roomy = cpu(cpu_cores=2, ram_available_mb=100_000)
    _runtime(project, processes=2)
    whole = preflight(project, config, probe=False, hardware=roomy).plan.memory
    _runtime(project, processes=2, fsdp=True)
    sharded = preflight(project, config, probe=False, hardware=roomy)
    assert sharded.plan.memory["total_mb"] < whole["total_mb"]
    assert sharded.plan.memory["basis"]["fsdp_shards"] == 2
    assert sharded.plan.config["fsdp"] and sharded.plan.accelerate["layout"]["kind"] == "fsdp"
    assert "--set fsdp=true" in sharded.plan.accelerate["launch_command"]

    # two processes share the machine's RAM: a budget per process between the two peaks
    per_process = (whole["total_mb"] + sharded.plan.memory["total_mb"]) / 2
    tight = cpu(cpu_cores=2, ram_available_mb=2 * per_process / 0.9)
    _runtime(project, processes=2, fsdp=False)
    blocked = preflight(project, config, probe=False, hardware=tight)
    item = next(b for b in blocked.blockers if b.check == "memory")
    assert item.code == "memory_does_not_fit" and "fsdp = true" in item.fix
    assert item.suggestion["runtime"] == {"fsdp": True}
    _runtime(project, processes=2, fsdp=True)
    fits = preflight(project, config, probe=False, hardware=tight)
    assert not [b for b in fits.blockers if b.check == "memory"]
