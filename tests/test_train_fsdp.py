"""FSDP2 on the real multi-process path: two CPU ranks over gloo, started by `accelerate launch`,
with the engine sharding the model (`fsdp=true`). The sharded run must end with the same weights
as the DDP run, resume from its own checkpoints, and work through peft on a decoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_train_ddp import SETS, _launch
from test_train_ddp import prepared as prepared  # a fixture: re-exported for this module

from brewslm_core import Project
from brewslm_core.train import read_trace
from brewslm_core.train.sharding import block_classes, by_index, by_name


# ---- pieces (fast) --------------------------------------------------------------------------
def test_optimizer_state_keys_go_from_names_to_indices_and_back() -> None:
    names = ["a.weight", "b.lora_A", "b.lora_B"]
    by_names = {
        "state": {"b.lora_A": {"step": 1.0}, "a.weight": {"step": 2.0}},
        "param_groups": [{"lr": 0.1, "params": ["a.weight", "b.lora_A", "b.lora_B"]}],
    }
    indexed = by_index(by_names, names)
    assert indexed == {
        "state": {1: {"step": 1.0}, 0: {"step": 2.0}},
        "param_groups": [{"lr": 0.1, "params": [0, 1, 2]}],
    }
    assert by_name(indexed, names) == by_names


def test_block_classes_are_found_through_a_peft_wrapper(shared_data: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModel

    from brewslm_core.train.base_model import resolve_model_path

    path = resolve_model_path("auto", "classification")
    with torch.device("meta"):
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
    wrapped = get_peft_model(encoder, LoraConfig(r=2, target_modules=["query"]))
    holder = torch.nn.ModuleDict({"encoder": wrapped, "head": torch.nn.Linear(2, 2)})
    assert {"BertLayer"} <= block_classes(holder)


# ---- two real ranks ------------------------------------------------------------------------
def _tensors(adapter: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(adapter.glob("*.safetensors")):
        out.update({f"{f.name}:{k}": v for k, v in load_file(str(f)).items()})
    return out


def _assert_same_weights(a: Path, b: Path) -> None:
    import torch

    left, right = _tensors(a), _tensors(b)
    assert left and set(left) == set(right)
    for key in left:
        if key.endswith("attention.self.key.bias"):
            # its true gradient is zero (softmax ignores a shift shared by every key): it moves
            # only by Adam-normalised rounding noise, which differs between any two correct
            # runs whose sums run in another order
            continue
        gap = float(torch.linalg.vector_norm(left[key] - right[key]))
        assert gap <= 1e-5 * float(torch.linalg.vector_norm(right[key])) + 1e-7, (key, gap)


def _ok(out) -> None:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [("method=lora",), ("method=full",), ("method=lora", "batch_size=2", "grad_accum=2")],
    ids=["lora", "full", "lora-accumulated"],
)
def test_fsdp_ranks_end_with_the_weights_of_a_ddp_run(prepared: Project, extra: tuple[str, ...]) -> None:
    # accumulated: the blocks reduce-scatter once per step, after the last micro-batch
    sets = [*SETS, *extra]
    _ok(_launch(prepared, "exp-ddpref1", *sets))
    _ok(_launch(prepared, "exp-fsdp001", *sets, "fsdp=true", fsdp=True))
    run_dir = prepared.run_dir("exp-fsdp001")

    events = prepared.events.list(stage="training", run_id="exp-fsdp001").to_dict(orient="records")
    assert len(events) == 1 and events[0]["severity"] == "info"
    assert events[0]["payload"]["backend"] == "torch-cpu-fsdp"
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["sharding"] == "fsdp" and plan["world_size"] == 2 and plan["config"]["fsdp"]
    assert [s["step"] for s in read_trace(run_dir / "trace.jsonl", "train")] == [1, 2]
    assert read_trace(run_dir / "trace.jsonl", "eval")  # the sharded model was scored too
    adapters = [p for p in run_dir.rglob("*.safetensors") if "checkpoints" not in p.parts]
    assert adapters and all(p.parent == run_dir / "adapter" for p in adapters)
    # both ranks gathered the same full weights ...
    sums = {p.name: p.read_text() for p in (run_dir / "replicas").glob("rank-*.sha256")}
    assert len(sums) == 2 and len(set(sums.values())) == 1
    # ... and those are the DDP run's weights: sharding changes where tensors live, not the math
    _assert_same_weights(run_dir / "adapter", prepared.run_dir("exp-ddpref1") / "adapter")
    # Adam hardly notices a gradient off by a constant factor, so check the scale itself: the
    # same losses and global gradient norms per step as DDP (sum over ranks, divide by count)
    trace = read_trace(run_dir / "trace.jsonl", "train")
    ddp = read_trace(prepared.run_dir("exp-ddpref1") / "trace.jsonl", "train")
    for key in ("loss", "grad_norm", "samples"):
        assert [s[key] for s in trace] == pytest.approx([s[key] for s in ddp], rel=1e-4), key
    assert all(s["grad_norm"] > 0 for s in trace)


@pytest.mark.slow
def test_an_fsdp_run_resumes_from_its_checkpoint_and_matches_the_uninterrupted_run(
    prepared: Project,
) -> None:
    sets = [*SETS, "max_steps=3", "checkpoint_every=1", "keep_checkpoints=3", "fsdp=true"]
    _ok(_launch(prepared, "exp-fsdpall", *sets, fsdp=True))
    whole = prepared.run_dir("exp-fsdpall")
    step1 = whole / "checkpoints" / "step-1"
    # the on-disk format is the unsharded one: full tensors by name, optimizer by index
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(step1 / "weights.safetensors"))
    state = torch.load(step1 / "state.pt", weights_only=True)
    assert set(state["optimizer"]["state"]) == set(range(len(weights)))
    assert len(state["rng_ranks"]) == 2

    # a run that stopped after step 1: its plan, trace and first checkpoint
    cut = prepared.run_dir("exp-fsdpcut")
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(step1, cut / "checkpoints" / "step-1")
    for name in ("plan.json", "trace.jsonl"):
        shutil.copy(whole / name, cut / name)
    # a second copy resumes without sharding: the checkpoint does not care how it was made
    shutil.copytree(cut, prepared.run_dir("exp-ddpcut"))
    _ok(_launch(prepared, "exp-fsdpcut", *sets, fsdp=True))
    resumed = read_trace(cut / "trace.jsonl", "train")
    assert [s["step"] for s in resumed] == [1, 2, 3]
    reference = read_trace(whole / "trace.jsonl", "train")
    assert [s["loss"] for s in resumed] == pytest.approx([s["loss"] for s in reference], rel=1e-5)
    _assert_same_weights(cut / "adapter", whole / "adapter")

    _ok(_launch(prepared, "exp-ddpcut", *[x for x in sets if x != "fsdp=true"]))
    _assert_same_weights(prepared.run_dir("exp-ddpcut") / "adapter", whole / "adapter")


@pytest.mark.slow
def test_a_decoder_with_lora_trains_sharded_block_by_block(project: Project, shared_data: Path) -> None:
    """SmolLM2 SFT: peft wraps LlamaForCausalLM, FSDP wraps its LlamaDecoderLayer blocks."""
    from test_train_rows import alpaca_rows
    from test_train_sft import commit

    from brewslm_core.prepare import prepare

    commit(project, "alpaca", [r["record"] for r in alpaca_rows(shared_data, 12)])
    prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=48)
    sets = ("method=lora", "lora_r=2", "max_steps=1", "batch_size=2", "max_length=48", "threads=1",
            "eval_max_rows=1", "fsdp=true")
    _ok(_launch(project, "exp-fsdpsft", *sets, fsdp=True))
    run_dir = project.run_dir("exp-fsdpsft")
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["sharding"] == "fsdp" and plan["handler"] == "Seq2SeqHandler"
    assert [s["step"] for s in read_trace(run_dir / "trace.jsonl", "train")] == [1]
    saved = _tensors(run_dir / "adapter")
    lora_b = [t for k, t in saved.items() if "lora_B" in k]
    assert len(lora_b) > 30 and any(float(t.abs().sum()) > 0 for t in lora_b)
    events = project.events.list(stage="training", run_id="exp-fsdpsft").to_dict(orient="records")
    assert [e["severity"] for e in events] == ["info"]


def test_fsdp_on_one_process_trains_unsharded_and_says_so(project: Project, shared_data: Path) -> None:
    from test_train_rows import banking_rows

    from brewslm_core.train import TrainConfig, train

    config = TrainConfig(task_profile="classification", method="lora", batch_size=4, max_length=32,
                         threads=1, max_steps=1, fsdp=True)
    result = train(project, config, banking_rows(shared_data, 16))
    assert result.status == "completed", result.error
    plan = json.loads((Path(result.run_dir) / "plan.json").read_text())
    assert plan["sharding"] == "none" and plan["world_size"] == 1 and plan["backend"] == "torch-cpu"
    assert "one process" in plan["sharding_note"]
    events = project.events.list(stage="training", run_id=result.run_id).to_dict(orient="records")
    assert plan["sharding_note"] in events[0]["payload"]["notes"]
