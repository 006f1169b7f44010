"""Export a real LoRA SFT run of SmolLM2-135M (2 steps) as adapter / hf / vllm / gguf bundles,
reload each with an independent loader and check the manifest, smoke record and events."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from test_train_rows import alpaca_rows
from test_train_sft import commit

from brewslm_core import Project
from brewslm_core.export import (
    ExportError,
    ExportNotFoundError,
    export,
    list_exports,
    load_bundle,
    verify_files,
)
from brewslm_core.export.gguf_file import permute_qk

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "Write one sentence about tea."]


@pytest.fixture(scope="module")
def sft(tmp_path_factory, shared_data):
    """(project, run_id): a prepared alpaca manifest and a 2-step LoRA run with a visible effect."""
    import torch

    from brewslm_core.prepare import prepare
    from brewslm_core.train.runner import train_project

    torch.set_num_threads(2)
    project = Project.create(tmp_path_factory.mktemp("export") / "proj")
    commit(project, "alpaca", [r["record"] for r in alpaca_rows(shared_data, 8)])
    prepare(project, task_profile="seq2seq", eval_fraction=0.25, max_length=64)
    result = train_project(project, {"method": "lora", "lora_r": 4, "batch_size": 2, "max_steps": 2,
                                     "threads": 2, "lr": 1e-2})
    assert result.status == "completed", result.error
    return project, result.run_id


def logits_of(model, tokenizer, prompts=PROMPTS):
    import torch

    out = []
    with torch.no_grad():
        for p in prompts:
            ids = tokenizer(p, return_tensors="pt", add_special_tokens=False).input_ids
            out.append(model(input_ids=ids).logits[0].float())
    return torch.cat(out)


def run_adapter_model(project, run_id):
    """The run's model rebuilt here with plain transformers + peft (not through the export code)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = json.loads((project.run_dir(run_id) / "plan.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(plan["base_model_path"], dtype=torch.float32).eval()
    base_logits = logits_of(base, AutoTokenizer.from_pretrained(plan["base_model_path"]))
    model = PeftModel.from_pretrained(base, project.run_dir(run_id) / "adapter").eval()
    return model, AutoTokenizer.from_pretrained(project.run_dir(run_id) / "adapter"), base_logits


def export_events(project, export_id):
    return project.events.list(run_id=export_id)


def test_qk_permutation_is_what_transformers_gguf_loader_undoes():
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    undo = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    q, k = rng.standard_normal((576, 576)), rng.standard_normal((192, 576))
    assert not np.array_equal(permute_qk(q, 9, 9), q)  # it really moves rows
    np.testing.assert_array_equal(undo.process(permute_qk(q, 9, 9), "blk.0.attn_q.weight").weights, q)
    np.testing.assert_array_equal(undo.process(permute_qk(k, 9, 3), "blk.0.attn_k.weight").weights, k)


def test_hf_export_is_merged_and_matches_the_adapter_model(sft):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    project, run_id = sft
    bundle = export(project, run_id, "hf")
    folder = Path(bundle.path)
    assert folder == project.exports_dir / bundle.export_id and bundle.format == "hf"
    names = {f.path for f in bundle.files}
    wanted = {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json", "smoke.json"}
    assert wanted <= names
    assert not any(n.startswith("adapter_") for n in names)  # merged: no peft files
    assert verify_files(bundle) == []
    for f in bundle.files:
        assert hashlib.sha256((folder / f.path).read_bytes()).hexdigest() == f.sha256

    # independent check in the test: plain transformers vs the run's peft model
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    adapter_model, tok, base_logits = run_adapter_model(project, run_id)
    assert AutoTokenizer.from_pretrained(folder)(PROMPTS[0]).input_ids == tok(PROMPTS[0]).input_ids
    ref = logits_of(adapter_model, tok)
    diff = float((logits_of(merged, tok) - ref).abs().max())
    effect = float((ref - base_logits).abs().max())
    assert diff < 2e-3 and effect > 100 * diff  # the LoRA changes logits; the merge keeps them

    smoke = json.loads((folder / "smoke.json").read_text())
    (check,) = smoke["checks"]
    assert smoke["passed"] and check["passed"] and check["gate"] == "merge"
    assert check["max_abs_diff"] < 2e-3 and check["adapter_effect_max_abs"] > 1.0

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source_run"] == run_id and manifest["task_profile"] == "seq2seq"
    lineage = manifest["lineage"]
    assert lineage["manifest_sha256"] == hashlib.sha256(project.manifest_path.read_bytes()).hexdigest()
    assert lineage["config_ids"] == ["cfg-1"] and lineage["source"] == "plan"  # what train recorded
    assert lineage["manifest_newer_than_run"] is False and "note" not in lineage
    assert manifest["quantizations"]["AWQ"]["status"] == "unavailable"
    assert manifest["serve"]["model_dir"] == "." and manifest["serve"]["kind"] == "causal_lm"
    assert load_bundle(project, bundle.export_id) == bundle

    ev = export_events(project, bundle.export_id)
    assert list(ev["severity"]) == ["info"] and list(ev["parent_run_id"]) == [run_id]
    payload = ev["payload"].iloc[0]
    assert payload["format"] == "hf" and payload["output_path"] == str(folder)
    assert payload["file_size_bytes"] == sum(f.size for f in bundle.files) > 500_000_000


def test_adapter_and_vllm_bundles_carry_what_their_loaders_need(sft):
    project, run_id = sft
    adapter = export(project, run_id, "adapter")
    names = {f.path for f in adapter.files}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
    src = project.run_dir(run_id) / "adapter" / "adapter_model.safetensors"
    entry = next(f for f in adapter.files if f.path == "adapter_model.safetensors")
    assert entry.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert adapter.serve.adapter_dir == "." and Path(adapter.serve.model_dir).is_absolute()

    vllm = export(project, run_id, "vllm")
    root = Path(vllm.path)
    for rel in ("model/config.json", "model/model.safetensors", "model/generation_config.json",
                "model/tokenizer.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        assert (root / rel).is_file(), rel
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(root / "model").chat_template  # chat endpoint works
    cmd = list(vllm.serve.command)
    assert cmd[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--model") + 1] == "model" and (root / "model").is_dir()
    assert "--enable-lora" in cmd and cmd[cmd.index("--max-lora-rank") + 1] == "8"  # r=4 -> vLLM's 8
    assert cmd[cmd.index("--lora-modules") + 1] == f"{run_id}=adapter"
    assert vllm.serve.adapter_dir == "adapter" and vllm.serve.model_dir == "model"
    smoke = json.loads((root / "smoke.json").read_text())
    assert smoke["passed"] and smoke["checks"][0]["max_abs_diff"] <= 1e-4
    assert smoke["generation_config"]["eos_token_id"] is not None
    ids = [b.export_id for b in list_exports(project)]
    assert adapter.export_id in ids and vllm.export_id in ids


def test_gguf_variants_reload_through_transformers_and_are_recorded(sft):
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    project, run_id = sft
    bundle = export(project, run_id, "gguf", "f16,q4_0,q4_k_m")
    root = Path(bundle.path)
    q = bundle.quantizations
    assert q["F16"].status == "available" and q["F16"].file == "model-f16.gguf"
    reader = gguf.GGUFReader(str(root / "model-f16.gguf"))
    assert reader.fields["general.architecture"].contents() == "llama"
    assert {t.tensor_type.name for t in reader.tensors} == {"F16", "F32"}
    assert "tokenizer.chat_template" in reader.fields
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 1000

    # independent reload in the test: transformers' GGUF loader vs the run merged by peft here
    adapter_model, tok, _ = run_adapter_model(project, run_id)
    ref = logits_of(adapter_model, tok)
    g_tok = AutoTokenizer.from_pretrained(root, gguf_file="model-f16.gguf")
    plain = {"add_special_tokens": False}
    assert g_tok(PROMPTS[1], **plain).input_ids == tok(PROMPTS[1], **plain).input_ids
    g_model = AutoModelForCausalLM.from_pretrained(root, gguf_file="model-f16.gguf", dtype=torch.float32)
    g_model.eval()
    f16 = logits_of(g_model, tok)
    assert float((f16 - ref).abs().max()) < 0.1
    assert bool((f16.argmax(-1) == ref.argmax(-1)).all())

    smoke = json.loads((root / "smoke.json").read_text())
    by_file = {c["artifact"]: c for c in smoke["checks"]}
    assert by_file["model-f16.gguf"]["passed"] and by_file["model-f16.gguf"]["token_ids_match"] == [True] * 3
    q4 = by_file["model-q4_0.gguf"]
    # the 4-bit gate is correlation >= 0.99 and top-1 >= 0.9; its status follows the measurement
    assert q["Q4_0"].status == ("available" if q4["passed"] else "failed")
    assert q4["passed"] == (q4["correlation"] >= 0.99 and q4["top1_agreement"] >= 0.9)
    assert q4["size_bytes"] < by_file["model-f16.gguf"]["size_bytes"] / 2.5
    assert "transformers' own gguf_file= loader" in smoke["note"]
    assert bundle.serve.model_dir == "model-f16.gguf"

    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        assert q["Q4_K_M"].status == "unavailable" and q["Q4_K_M"].file is None
        assert "llama-cpp-python" in q["Q4_K_M"].reason and "256" in q["Q4_K_M"].reason
        assert not (root / "model-q4_k_m.gguf").exists()
    ev = export_events(project, bundle.export_id)
    warned = ev[ev["reason_code"] == "export_quantization_failed"]
    not_made = {v for v in ("f16", "q4_0", "q4_k_m") if q[v.upper()].status != "available"}
    assert "q4_k_m" in not_made or importlib.util.find_spec("llama_cpp") is not None
    assert {p["quantization"] for p in warned["payload"]} == not_made
    assert set(warned["severity"]) == {"warning"}
    assert list(ev[ev["severity"] == "info"]["payload"])[0]["format"] == "gguf"


def test_missing_artifacts_and_failed_runs_leave_no_bundle(sft):
    project, run_id = sft
    before = sorted(p.name for p in project.exports_dir.iterdir())

    with pytest.raises(ExportError, match="no plan.json") as err:
        export(project, "exp-nothere", "hf")
    assert err.value.reason_code == "export_artifact_missing"

    # a run whose adapter/ folder is gone
    broken = project.run_dir("exp-noadapter")
    broken.mkdir()
    shutil.copy(project.run_dir(run_id) / "plan.json", broken / "plan.json")
    with pytest.raises(ExportError, match="no trained weights") as err:
        export(project, "exp-noadapter", "adapter")
    assert err.value.reason_code == "export_artifact_missing"

    # weights that fail to load after the bundle was half written: nothing stays behind
    corrupt = project.run_dir("exp-corrupt")
    shutil.copytree(project.run_dir(run_id), corrupt)
    (corrupt / "adapter" / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ExportError) as err:
        export(project, "exp-corrupt", "adapter")
    assert err.value.reason_code == "export_run_failed"

    with pytest.raises(ExportError, match="unknown export format") as err:
        export(project, run_id, "onnx")
    assert err.value.reason_code == "export_run_failed"

    # q4_k_m alone without llama.cpp: no variant produced, no bundle
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        with pytest.raises(ExportError, match="no GGUF variant") as err:
            export(project, run_id, "gguf", "q4_k_m")
        assert err.value.reason_code == "export_quantization_failed"

    assert sorted(p.name for p in project.exports_dir.iterdir()) == before  # no staging, no half bundle
    ev = project.events.list(stage="export")
    codes = list(ev[ev["severity"] == "error"]["reason_code"])
    assert codes.count("export_artifact_missing") == 2 and codes.count("export_run_failed") == 2
    corrupt_ev = ev[ev["parent_run_id"] == "exp-corrupt"]
    assert list(corrupt_ev["reason_code"]) == ["export_run_failed"]
    with pytest.raises(ExportNotFoundError, match="finished exports"):
        load_bundle(project, "export-00000000")


def test_cli_exports_and_lists(sft):
    from typer.testing import CliRunner

    from brewslm_core.cli import app

    project, run_id = sft
    runner = CliRunner()
    out = runner.invoke(app, ["export", str(project.root), run_id, "--format", "adapter", "--json"])
    assert out.exit_code == 0, out.output
    made = json.loads(out.stdout.strip().splitlines()[-1])
    assert made["format"] == "adapter" and made["source_run"] == run_id
    listed = runner.invoke(app, ["export", "list", str(project.root)])
    assert listed.exit_code == 0 and made["export_id"] in listed.stdout
    shown = runner.invoke(app, ["export", "show", str(project.root), made["export_id"]])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["file_problems"] == []
    bad = runner.invoke(app, ["export", str(project.root), "exp-nothere", "--format", "hf"])
    assert bad.exit_code == 2 and "export_artifact_missing" in bad.output


def test_full_fine_tune_exports_its_own_weights_for_vllm(sft):
    """method=full: no adapter, so the vllm bundle serves the trained weights themselves."""
    from brewslm_core.train.runner import train_project

    project, _ = sft
    result = train_project(project, {"method": "full", "batch_size": 2, "max_steps": 1, "threads": 2,
                                     "lr": 1e-4})
    assert result.status == "completed", result.error
    bundle = export(project, result.run_id, "vllm")
    root = Path(bundle.path)
    assert not (root / "adapter").exists() and bundle.serve.adapter_dir is None
    trained = project.run_dir(result.run_id) / "adapter" / "model.safetensors"
    entry = next(f for f in bundle.files if f.path == "model/model.safetensors")
    assert entry.sha256 == hashlib.sha256(trained.read_bytes()).hexdigest()
    assert "--enable-lora" not in bundle.serve.command
    assert bundle.base_model["lora"] is False and bundle.base_model["method"] == "full"
    smoke = json.loads((root / "smoke.json").read_text())
    assert smoke["passed"] and smoke["checks"][0]["max_abs_diff"] <= 1e-4


def test_lineage_is_what_the_run_read_and_older_runs_say_they_fall_back(sft):
    """train_project writes the manifest's sha256 and config/import ids into plan.json; a later
    prepare does not change a run's lineage; a plan without them falls back to the project
    manifest and says so (and says when that manifest is newer than the run)."""
    import os

    project, run_id = sft
    raw = project.manifest_path.read_bytes()
    source = json.loads(raw)["source"]
    plan_path = project.run_dir(run_id) / "plan.json"
    plan = json.loads(plan_path.read_text())
    assert plan["manifest_sha256"] == hashlib.sha256(raw).hexdigest()
    assert plan["config_ids"] == ["cfg-1"] and plan["import_ids"] == source["import_ids"]
    assert len(plan["import_ids"]) == 1

    old = project.run_dir("exp-oldplan")  # a run from before plans carried lineage
    shutil.copytree(project.run_dir(run_id), old)
    stripped = {k: v for k, v in plan.items() if k not in ("manifest_sha256", "config_ids", "import_ids")}
    (old / "plan.json").write_text(json.dumps(stripped))
    past = project.manifest_path.stat().st_mtime
    os.utime(old / "plan.json", (past + 10, past + 10))
    fallback = export(project, "exp-oldplan", "adapter").lineage
    assert fallback["source"] == "project_manifest" and fallback["config_ids"] == ["cfg-1"]
    assert fallback["manifest_sha256"] == plan["manifest_sha256"]
    assert fallback["manifest_newer_than_run"] is False and "does not record its manifest" in fallback["note"]

    try:  # the manifest rewritten after both runs (a new prepare): bytes and mtime change
        project.manifest_path.write_bytes(raw + b"\n")
        os.utime(project.manifest_path, (past + 100, past + 100))
        assert export(project, run_id, "adapter").lineage["manifest_sha256"] == plan["manifest_sha256"]
        late = export(project, "exp-oldplan", "adapter").lineage
        assert late["manifest_sha256"] == hashlib.sha256(raw + b"\n").hexdigest() != plan["manifest_sha256"]
        assert late["manifest_newer_than_run"] is True and "rewritten after this run" in late["note"]
    finally:
        project.manifest_path.write_bytes(raw)
