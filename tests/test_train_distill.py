"""Distillation from a captured teacher: real SmolLM2 on real alpaca rows, through train_project."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from test_train_rows import alpaca_rows
from test_train_sft import commit
from typer.testing import CliRunner

from brewslm_core import Project
from brewslm_core.cli import app
from brewslm_core.prepare import Manifest, prepare
from brewslm_core.train import capture_teacher, read_trace
from brewslm_core.train.base_model import resolve_model_path
from brewslm_core.train.config import TrainConfig
from brewslm_core.train.distill import DistillError, example_key, load_capture
from brewslm_core.train.handlers import IGNORE, Seq2SeqHandler
from brewslm_core.train.runner import train_project

pytestmark = pytest.mark.slow

MAX_LENGTH = 64


@pytest.fixture(scope="module")
def sft_project(tmp_path_factory, shared_data):
    """Six short alpaca rows prepared for SFT, plus one capture of the default model on them."""
    project = Project.create(tmp_path_factory.mktemp("distill") / "proj")
    commit(project, "alpaca", [r["record"] for r in alpaca_rows(shared_data, 8)])
    prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=MAX_LENGTH)
    calls: list[tuple[int, int]] = []
    capture = capture_teacher(
        project, "auto", top_k=8, batch_size=4, threads=1, progress=lambda d, t, m: calls.append((d, t))
    )
    return project, capture, calls


def train_rows(project):
    return list(Manifest.load(project).iter_split(project, "train"))


def sft_examples(project):
    """The SFT handler's own encoding of the train split (what training will see)."""
    handler = Seq2SeqHandler()
    rows = train_rows(project)
    handler.setup(
        resolve_model_path("auto", "seq2seq"),
        rows,
        TrainConfig(task_profile="seq2seq", max_length=MAX_LENGTH),
    )
    return [e for e in handler.encode(rows) if e is not None]


def tiny_teacher(folder, extra_token: str = "<|distill_test|>"):
    """A random 1-layer Llama whose tokenizer is SmolLM2's plus one token: another vocabulary."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(resolve_model_path("auto", "seq2seq"))
    tok.add_tokens([extra_token])
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_capture_writes_topk_for_every_loss_position_and_one_event(sft_project):
    project, capture, calls = sft_project
    folder = project.teacher_dir(capture.capture_id)
    assert {p.name for p in folder.iterdir()} == {"capture.json", "index.json", "teacher.safetensors"}
    assert not [p for p in project.teacher_dir().iterdir() if p.name.endswith(".tmp")]
    meta = json.loads((folder / "capture.json").read_text())
    assert meta["top_k"] == 8 and meta["max_length"] == MAX_LENGTH
    assert len(meta["tokenizer_fingerprint"]) == 64

    examples = sft_examples(project)
    # the demo data repeats a row verbatim: a repeated example is captured once
    distinct = list({example_key(e.input_ids): e for e in examples}.values())
    assert capture.rows - capture.skipped == len(examples) > len(distinct) == capture.examples
    loss_positions = sum(sum(t != IGNORE for t in e.target) for e in distinct)
    assert capture.positions == loss_positions > 0
    arrays = load_file(str(folder / "teacher.safetensors"))
    assert arrays["ids"].shape == arrays["logprobs"].shape == (loss_positions, 8)
    assert arrays["ids"].dtype == np.int32
    logp = arrays["logprobs"]
    assert (logp <= 0).all() and (np.diff(logp, axis=1) <= 0).all()  # sorted, best first
    assert (np.exp(logp).sum(axis=1) <= 1.0 + 1e-4).all()  # a top-k slice of a distribution

    # every example is found by its input ids, in any order, with one row per loss position
    table = load_capture(project, capture.capture_id)
    for e in reversed(examples):
        ids, lp = table.lookup(e.input_ids)
        assert len(ids) == len(lp) == sum(t != IGNORE for t in e.target)
    # the teacher's best token at a position is often the label there (a real model, easy rows)
    first = examples[0]
    got = table.lookup(first.input_ids)[0][:, 0]
    labels = [t for t in first.target if t != IGNORE]
    assert np.mean(got == np.asarray(labels)) > 0.3
    assert table.lookup([1, 2, 3]) is None

    ev = project.events.list(run_id=capture.capture_id)
    assert len(ev) == 1
    row = ev.iloc[0]
    assert (row["stage"], row["severity"], row["reason_code"]) == (
        "ingestion",
        "info",
        "distillation_teacher_capture",
    )
    assert set(row["payload"]) == {
        "capture_id",
        "teacher",
        "top_k",
        "rows",
        "examples",
        "positions",
        "skipped",
        "path",
        "seconds",
    }
    assert row["payload"]["positions"] == loss_positions
    assert calls and calls[-1][0] == calls[-1][1] == len(calls)


def test_kd_at_step_one_equals_teacher_entropy_and_resumed_run_still_distils(sft_project):
    """Teacher == student base and LoRA (adapter B starts at zero): at step 1 the student IS the
    teacher, so the KD term is the top-k renormalised teacher entropy, computed here from the
    stored file alone."""
    project, capture, _ = sft_project
    n = capture.rows - capture.skipped
    config = {
        "method": "lora",
        "lora_r": 4,
        "batch_size": n,  # step 1 sees every captured example
        "epochs": 3,
        "max_steps": 2,
        "checkpoint_every": 1,
        "threads": 1,
        "lr": 5e-4,
        "distill_from": capture.capture_id,
        "distill_alpha": 0.5,
        "distill_temperature": 1.0,
    }
    result = train_project(project, config)
    assert result.status == "completed", result.error
    run = project.run_dir(result.run_id)
    steps = read_trace(run / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["ce_loss"] > 0 and s["kd_loss"] > 0 for s in steps)

    # the expectation from the stored file alone, over step 1's positions (repeats included)
    arrays = load_file(str(project.teacher_dir(capture.capture_id) / "teacher.safetensors"))
    keys = json.loads((project.teacher_dir(capture.capture_id) / "index.json").read_text())
    logp = np.concatenate(
        [
            arrays["logprobs"][arrays["offsets"][i] : arrays["offsets"][i + 1]]
            for i in (keys.index(example_key(e.input_ids)) for e in sft_examples(project))
        ]
    ).astype(np.float64)
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = float(np.mean(-(p * logp).sum(axis=1)))
    assert steps[0]["kd_loss"] == pytest.approx(expected, rel=2e-3, abs=2e-3)
    # every position has a teacher row, so the loss is the even mix of the two per-token parts
    assert steps[0]["loss"] == pytest.approx(0.5 * steps[0]["ce_loss"] + 0.5 * steps[0]["kd_loss"], rel=1e-4)
    plan = json.loads((run / "plan.json").read_text())
    assert plan["handler_state"]["distill"]["examples_with_teacher"] == n  # repeats found too
    assert "notes" not in plan["handler_state"]
    # held-out rows are scored on their labels alone
    assert "eval_loss" in read_trace(run / "trace.jsonl", "eval")[-1]

    resumed = train_project(project, {**config, "max_steps": 3}, run_id=result.run_id, resume=True)
    assert resumed.status == "completed", resumed.error
    assert resumed.resumed_from_step == 2
    steps = read_trace(run / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert steps[-1]["kd_loss"] > 0 and steps[-1]["ce_loss"] > 0


def test_rows_without_capture_train_on_labels_and_are_noted(sft_project):
    """A capture of half the rows: the others get CE only, and the run says so."""
    project, full, _ = sft_project
    rows = train_rows(project)
    half = capture_teacher(project, "auto", rows[: len(rows) // 2], top_k=4, threads=1)
    result = train_project(
        project,
        {
            "method": "lora",
            "lora_r": 4,
            "batch_size": len(rows),
            "max_steps": 1,
            "threads": 1,
            "distill_from": half.capture_id,
            "distill_alpha": 1.0,
        },
    )
    assert result.status == "completed", result.error
    state = json.loads((project.run_dir(result.run_id) / "plan.json").read_text())["handler_state"]
    assert state["distill"]["examples_with_teacher"] == half.examples < state["distill"]["examples"]
    assert "train on the labels only" in state["notes"][0]
    ev = project.events.list(run_id=result.run_id)
    assert "train on the labels only" in ev["payload"].iloc[0]["notes"][0]
    step = read_trace(project.run_dir(result.run_id) / "trace.jsonl", "train")[0]
    assert step["kd_loss"] > 0
    # alpha 1: captured positions weigh only KD, the others only CE. What is left of the step's
    # summed loss after the KD part is the CE of the uncaptured positions: some, not all of it.
    everything, captured = full.positions, half.positions
    rest = step["loss"] * everything - step["kd_loss"] * captured
    assert 0.5 < rest < step["ce_loss"] * everything

    # a finished LoRA run is a teacher too: its adapter is merged into its base
    again = capture_teacher(project, result.run_id, rows[:2], top_k=2, threads=1, student="auto")
    meta = json.loads((project.teacher_dir(again.capture_id) / "capture.json").read_text())
    assert meta["teacher_path"].endswith("adapter") and again.positions > 0


def test_other_tokenizer_and_unknown_capture_give_clear_errors(sft_project, tmp_path):
    project, capture, _ = sft_project
    teacher = tiny_teacher(tmp_path / "tiny")
    with pytest.raises(DistillError, match="different tokenizer vocabularies"):
        capture_teacher(project, str(teacher), top_k=4, threads=1, student="auto")
    # without a student to check against, the capture is made; training then refuses it
    other = capture_teacher(project, str(teacher), top_k=4, threads=1)
    assert other.positions > 0
    base = {"method": "lora", "lora_r": 4, "batch_size": 4, "max_steps": 1, "threads": 1}
    result = train_project(project, {**base, "distill_from": other.capture_id})
    assert result.status == "failed" and result.reason_code == "training_runtime_error"
    assert "different tokenizer vocabulary" in result.error

    result = train_project(project, {**base, "distill_from": "distill-nope"})
    assert result.status == "failed"
    assert "'distill-nope'" in result.error and capture.capture_id in result.error
    with pytest.raises(DistillError, match=other.capture_id):
        load_capture(project, "distill-nope")
    with pytest.raises(DistillError, match="no teacher capture"):
        load_capture(project, "../proj")  # a name, never a path out of the teachers folder

    encoder = resolve_model_path("auto", "classification")  # MiniLM: not a causal LM
    with pytest.raises(DistillError, match="not a causal LM"):
        capture_teacher(project, str(encoder), top_k=4, threads=1)
    with pytest.raises(DistillError, match="not a Hugging Face model folder"):
        capture_teacher(project, str(tmp_path), top_k=4, threads=1)


def test_cli_capture_teacher_prints_id_and_how_to_use_it(sft_project, tmp_path):
    project, _, _ = sft_project
    teacher = tiny_teacher(tmp_path / "tiny")
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["train", "capture-teacher", str(project.root), "--teacher", str(teacher), "--top-k", "3", "--json"],
    )
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["top_k"] == 3 and got["positions"] > 0
    assert load_capture(project, got["capture_id"]).ids.shape[1] == 3
    out = runner.invoke(app, ["train", "capture-teacher", str(project.root), "--teacher", str(teacher)])
    assert out.exit_code == 0, out.output
    assert "--set distill_from=distill-" in out.stdout
    bad = runner.invoke(app, ["train", "capture-teacher", str(project.root), "--teacher", "exp-nope"])
    assert bad.exit_code == 2 and "neither a run of this project" in bad.output


def test_example_key_depends_on_ids_only():
    assert example_key([5, 6, 7]) == example_key((5, 6, 7)) != example_key([5, 6])


def test_distill_is_refused_outside_sft_and_with_bad_weights():
    with pytest.raises(ValueError, match="applies to task_profile 'seq2seq'"):
        TrainConfig(task_profile="qa", distill_from="distill-1").check()
    with pytest.raises(ValueError, match="distill_alpha"):
        TrainConfig(task_profile="seq2seq", distill_from="distill-1", distill_alpha=1.5).check()
    TrainConfig(task_profile="seq2seq", distill_from="distill-1").check()  # well-formed
