"""The local target end to end: `transformers serve` over the real merged HF export of a 2-step LoRA
SFT run of SmolLM2, talked to with the official openai client; promote on the run's real eval report,
supersede, rollback and drift (now and on a schedule)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_deploy_support import (
    TRAINED_GOLD,
    gold_project,
    perturbed_model,
    promotable_report,
    smollm2_dir,
    trained_run,
)

from brewslm_core import tasks
from brewslm_core.deploy import (
    DeploymentError,
    deploy,
    drift,
    get,
    history,
    promote,
    restart,
    rollback,
    schedule_drift,
    stop,
)
from brewslm_core.deploy.client import openai_client
from brewslm_core.deploy.serve import free_port, is_running
from brewslm_core.export import export

pytestmark = pytest.mark.slow


def test_local_lifecycle_promote_supersede_rollback_and_drift(project, shared_data, tmp_path):
    gold_project(project, shared_data, TRAINED_GOLD)
    run_id = trained_run(project)
    bundle = export(project, run_id, "hf")
    assert bundle.format == "hf" and bundle.source_run == run_id
    export_id = bundle.export_id
    noisy_dir = perturbed_model(smollm2_dir(), tmp_path / "noisy")
    port = free_port()
    started = []
    try:
        a = deploy(project, export_id, "local", port=port, threads=1)
        started.append(a)
        assert (a.server, a.status, a.endpoint) == (
            "transformers-serve",
            "candidate",
            f"http://127.0.0.1:{port}/v1",
        )
        assert is_running(project, a.task_id)
        api = openai_client(a.endpoint)
        reply = api.chat.completions.create(
            model=a.served_model_name,
            temperature=0.0,
            max_tokens=12,
            messages=[{"role": "user", "content": "How many days are in a week?"}],
        )
        assert "7" in reply.choices[0].message.content  # the trained run's own answer (measured)
        chunks = api.chat.completions.create(
            model=a.served_model_name,
            temperature=0.0,
            max_tokens=4,
            stream=True,
            messages=[{"role": "user", "content": "Hi"}],
        )
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2

        report = promotable_report(project, run_id)
        a = promote(project, a.deploy_id)
        assert a.status == "promoted" and a.predecessor is None and a.smoke.ok
        assert a.export_id == export_id and report.eval_id
        gold = a.smoke.gold
        assert gold.source == "prepared/gold.jsonl" and gold.n == len(TRAINED_GOLD)
        assert a.baseline_pass_rate == gold.passed / gold.n > 0
        assert {e["id"] for e in gold.examples} and all("output" in e for e in gold.examples)

        # a second deployment of the same export: the user's URL of the running server
        b = deploy(project, export_id, "vllm", endpoint=a.endpoint)
        b = promote(project, b.deploy_id)
        assert b.predecessor == a.deploy_id
        assert get(project, a.deploy_id).status == "superseded"
        assert get(project, a.deploy_id).superseded_by == b.deploy_id
        same = drift(project, b.deploy_id)
        assert not same["drifted"] and same["pass_rate"] == b.baseline_pass_rate

        restored = rollback(project)
        assert restored.deploy_id == a.deploy_id and restored.status == "promoted"
        assert get(project, b.deploy_id).status == "rolled_back"
        with pytest.raises(DeploymentError) as exc:
            rollback(project)
        assert exc.value.reason_code == "deployment_rollback_no_predecessor"

        # the weights behind a's export are replaced and its server restarted: drift shows it
        weights = Path(bundle.path) / "model.safetensors"
        assert weights.is_file() and not weights.is_symlink()  # the export's own merged weights
        weights.unlink()
        weights.symlink_to(noisy_dir / "model.safetensors")
        a = restart(project, a.deploy_id)
        assert is_running(project, a.task_id) and a.endpoint == f"http://127.0.0.1:{port}/v1"
        entry = drift(project, a.deploy_id)
        assert entry["drifted"] and entry["pass_rate"] < a.baseline_pass_rate
        assert entry["delta"] == entry["pass_rate"] - a.baseline_pass_rate

        task_id = schedule_drift(project, a.deploy_id, every_s=0.2, times=1)
        st = tasks.wait(project, task_id, timeout=600)
        assert st.state == "succeeded", st.error
        assert st.result == {"checks": 1, "drifted": 1}
        assert len(get(project, a.deploy_id).drift) == 2
    finally:
        for dep in started:
            stop(project, dep.deploy_id)
    ev = project.events.list(stage="deployment", limit=None).sort_values("id")
    actions = [p.get("action") for p in ev["payload"]]
    assert actions[:5] == ["deploy", "promote", "deploy", "promote", "drift"]
    drifted = ev[ev["reason_code"] == "deployment_drift_detected"]
    assert len(drifted) == 2 and set(drifted["run_id"]) == {a.deploy_id}
    assert "deployment_rollback_no_predecessor" in set(ev["reason_code"].dropna())
    revisions = [r.revision for r in history(project, a.deploy_id)]
    assert revisions == list(range(1, len(revisions) + 1))
