"""A real vLLM (CPU) server started from a vllm-layout export with a LoRA adapter beside the base,
in brewslm's own runtime venv, talked to with the official openai client: chat, completion,
streaming, the adapter; then promote through the live smoke check and stop."""

from __future__ import annotations

import urllib.error

import pytest
from test_deploy_support import RUN_ID, gold_project, lay_out_export, make_adapter, smollm2_dir, write_report

from brewslm_core import tasks
from brewslm_core.deploy import deploy, promote, stop
from brewslm_core.deploy.client import openai_client
from brewslm_core.deploy.serve import get_json

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def vllm_runtime():
    from brewslm_core.deploy import runtime

    # the product's own install (≈3.4 GB, a few minutes): a fresh CI machine gets it here, once
    return runtime.install_runtime("vllm")


def test_vllm_server_from_an_export_with_a_lora_adapter(project, shared_data, tmp_path, vllm_runtime):
    gold_project(project, shared_data)
    adapter = make_adapter(smollm2_dir(), tmp_path / "adapter", rank=8)
    lay_out_export(project, "export-vl01", smollm2_dir(), adapter_src=adapter)
    dep = deploy(project, "export-vl01", "vllm")
    try:
        assert (dep.server, dep.status, dep.served_model_name, dep.adapter_name) == (
            "vllm",
            "candidate",
            "base",
            RUN_ID,
        )
        assert dep.endpoint.startswith("http://127.0.0.1:")
        api = openai_client(dep.endpoint)
        assert {m.id for m in api.models.list().data} == {"base", RUN_ID}

        base = api.chat.completions.create(model="base", messages=QUESTION, max_tokens=12, temperature=0.0)
        assert base.choices[0].message.content.strip() and 0 < base.usage.completion_tokens <= 12

        text = api.completions.create(
            model="base", prompt="The capital of France is", max_tokens=4, temperature=0.0
        )
        assert "Paris" in text.choices[0].text

        stream = api.chat.completions.create(
            model="base", messages=QUESTION, max_tokens=8, temperature=0.0, stream=True
        )
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert len(pieces) >= 2 and "".join(pieces) == base.choices[0].message.content[: len("".join(pieces))]

        lora = api.chat.completions.create(model=RUN_ID, messages=QUESTION, max_tokens=12, temperature=0.0)
        assert lora.model == RUN_ID
        assert lora.choices[0].message.content != base.choices[0].message.content  # the adapter is applied

        write_report(project, promotable=True)
        dep = promote(project, dep.deploy_id)
        assert dep.status == "promoted" and dep.smoke.ok and dep.smoke.model == RUN_ID
        assert dep.smoke.gold.n == 5 and dep.baseline_pass_rate == dep.smoke.gold.passed / 5
    finally:
        stopped = stop(project, dep.deploy_id)
    assert tasks.status(project, stopped.task_id).state == "cancelled"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get_json(dep.endpoint + "/models", timeout=2)
