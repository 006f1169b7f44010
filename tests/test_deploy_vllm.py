"""A real vLLM (CPU) server started from the real `vllm` export of a 2-step LoRA SFT run of SmolLM2
(base + the run's adapter, served with --enable-lora), in brewslm's own runtime venv, talked to with
the official openai client: chat, completion, streaming, the adapter; then promote on the run's real
eval report through the live smoke check, and stop."""

from __future__ import annotations

import urllib.error

import pytest
from test_deploy_support import TRAINED_GOLD, gold_project, promotable_report, trained_run

from brewslm_core import tasks
from brewslm_core.deploy import deploy, promote, stop
from brewslm_core.deploy.client import openai_client
from brewslm_core.deploy.serve import get_json
from brewslm_core.export import export

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def vllm_runtime():
    from brewslm_core.deploy import runtime

    # the product's own install (≈3.4 GB, a few minutes): a fresh CI machine gets it here, once
    return runtime.install_runtime("vllm")


def test_vllm_server_from_an_export_with_a_lora_adapter(project, shared_data, vllm_runtime):
    gold_project(project, shared_data, TRAINED_GOLD)
    run_id = trained_run(project)
    bundle = export(project, run_id, "vllm")
    assert bundle.serve.adapter_dir == "adapter" and "--enable-lora" in bundle.serve.command
    dep = deploy(project, bundle.export_id, "vllm")
    try:
        assert (dep.server, dep.status, dep.served_model_name, dep.adapter_name) == (
            "vllm",
            "candidate",
            "base",
            run_id,
        )
        assert dep.endpoint.startswith("http://127.0.0.1:")
        api = openai_client(dep.endpoint)
        assert {m.id for m in api.models.list().data} == {"base", run_id}

        base = api.chat.completions.create(model="base", messages=QUESTION, max_tokens=12, temperature=0.0)
        assert base.choices[0].message.content.strip() and 0 < base.usage.completion_tokens <= 12

        text = api.completions.create(
            model="base", prompt="The capital of France is", max_tokens=4, temperature=0.0, logprobs=1
        )
        assert "Paris" in text.choices[0].text

        stream = api.chat.completions.create(
            model="base", messages=QUESTION, max_tokens=8, temperature=0.0, stream=True
        )
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert len(pieces) >= 2 and "".join(pieces) == base.choices[0].message.content[: len("".join(pieces))]

        lora = api.chat.completions.create(model=run_id, messages=QUESTION, max_tokens=12, temperature=0.0)
        assert lora.model == run_id and lora.choices[0].message.content.strip()
        # the trained adapter is applied: same prompt, same greedy tokens or not, other log-probabilities
        tuned = api.completions.create(
            model=run_id, prompt="The capital of France is", max_tokens=4, temperature=0.0, logprobs=1
        )
        base_lp, tuned_lp = text.choices[0].logprobs.token_logprobs, tuned.choices[0].logprobs.token_logprobs
        assert len(base_lp) == len(tuned_lp) == 4
        if tuned.choices[0].text == text.choices[0].text:
            assert max(abs(a - b) for a, b in zip(base_lp, tuned_lp, strict=True)) > 1e-3

        promotable_report(project, run_id)
        dep = promote(project, dep.deploy_id)
        assert dep.status == "promoted" and dep.smoke.ok and dep.smoke.model == run_id
        n = len(TRAINED_GOLD)
        assert dep.smoke.gold.n == n and dep.baseline_pass_rate == dep.smoke.gold.passed / n
    finally:
        stopped = stop(project, dep.deploy_id)
    assert tasks.status(project, stopped.task_id).state == "cancelled"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get_json(dep.endpoint + "/models", timeout=2)
