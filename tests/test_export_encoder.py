"""Encoder runs (MiniLM classification, 2 LoRA steps on banking77) export as adapter and merged
hf; gguf and vllm are recorded as not applicable, and asking for them fails with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train_rows import banking_rows

from brewslm_core.export import ExportError, export
from brewslm_core.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_data):
    import torch

    from brewslm_core import Project

    torch.set_num_threads(1)
    project = Project.create(tmp_path_factory.mktemp("export-enc") / "proj")
    rows = banking_rows(shared_data, 24)
    config = TrainConfig(task_profile="classification", method="lora", lr=5e-3, batch_size=8, max_length=32,
                         threads=1, max_steps=2)
    result = train(project, config, rows[:16], rows[16:])
    assert result.status == "completed", result.error
    return project, result.run_id


def test_encoder_hf_export_merges_the_encoder_and_keeps_the_head(run):
    import torch
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    project, run_id = run
    bundle = export(project, run_id, "hf")
    root = Path(bundle.path)
    names = {f.path for f in bundle.files}
    assert "model.safetensors" in names and not any(n.startswith("adapter_") for n in names)
    src = project.run_dir(run_id) / "adapter"
    extras = {p.name for p in src.iterdir() if not p.name.startswith("adapter_") and p.name != "README.md"}
    assert extras <= names  # the task head and label list travel with the merged encoder
    assert bundle.not_applicable.keys() == {"gguf", "vllm"}
    assert "encoder" in bundle.not_applicable["gguf"]
    assert bundle.serve.kind == "encoder"

    # in the test: plain AutoModel on the bundle vs base + the run's peft adapter
    plan = json.loads((project.run_dir(run_id) / "plan.json").read_text())
    tok = AutoTokenizer.from_pretrained(root)
    ids = tok("my card was declined at the shop", return_tensors="pt")
    base = AutoModel.from_pretrained(plan["base_model_path"], dtype=torch.float32).eval()
    with torch.no_grad():
        base_h = base(**ids).last_hidden_state
        ref = PeftModel.from_pretrained(base, src).eval()(**ids).last_hidden_state
        merged = AutoModel.from_pretrained(root, dtype=torch.float32).eval()(**ids).last_hidden_state
    assert float((merged - ref).abs().max()) < 2e-3 < float((ref - base_h).abs().max())
    smoke = json.loads((root / "smoke.json").read_text())
    assert smoke["passed"] and smoke["checks"][0]["gate"] == "merge_hidden"

    adapter = export(project, run_id, "adapter")
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {f.path for f in adapter.files}


@pytest.mark.parametrize("fmt", ["gguf", "vllm"])
def test_causal_only_formats_are_refused_for_encoders(run, fmt):
    project, run_id = run
    before = sorted(p.name for p in project.exports_dir.iterdir())
    with pytest.raises(ExportError, match="not applicable") as err:
        export(project, run_id, fmt)
    assert err.value.reason_code == "export_run_failed"
    assert sorted(p.name for p in project.exports_dir.iterdir()) == before
    ev = project.events.list(stage="export", severity="error")
    assert "export_run_failed" in set(ev["reason_code"])
