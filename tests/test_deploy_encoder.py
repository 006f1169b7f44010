"""An encoder run deployed: MiniLM classification trained for a few steps, exported by the real
export stage, served by the local target's /v1/classify route over predict; smoke, promote and
drift work the same as for generative models; vLLM refuses it with the way to go."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from test_train_rows import banking_rows

from brewslm_core.contracts.reasons import SHAPE_TASK_PROFILE
from brewslm_core.contracts.shapes import text_hash
from brewslm_core.deploy import DeploymentError, deploy, drift, promote, stop
from brewslm_core.deploy.client import classify
from brewslm_core.deploy.serve import get_json
from brewslm_core.mapping.store import append_commit

pytestmark = pytest.mark.slow


def commit(project, import_id: str, rows: list[dict], gold: bool) -> None:
    shape = "classification"
    append_commit(
        project,
        [
            {
                "import_id": import_id,
                "row_index": i,
                "shape": shape,
                "task_profile": SHAPE_TASK_PROFILE[shape],
                "config_id": f"cfg-{import_id}",
                "text_hash": text_hash(shape, r["record"]),
                "record": r["record"],
            }
            for i, r in enumerate(rows)
        ],
        {
            "import_id": import_id,
            "config_id": f"cfg-{import_id}",
            "shape": shape,
            "gold": gold,
            "locator": f"test:{import_id}",
        },
    )


def write_pack(project) -> None:
    """An eval pack whose one gate a 4-step model passes: promote needs a promotable report."""
    (project.root / "evals").mkdir(exist_ok=True)
    (project.root / "evals" / "default.yaml").write_text(
        "name: default\ndataset: gold\nmetrics: [accuracy]\ngates:\n  - accuracy >= 0.0\n", encoding="utf-8"
    )


def test_encoder_run_served_on_a_classify_route(project, shared_data):
    import torch

    from brewslm_core.export import export
    from brewslm_core.prepare import prepare
    from brewslm_core.train import TrainConfig, train

    torch.set_num_threads(1)
    rows = banking_rows(shared_data, 64)
    commit(project, "imp-train", rows, gold=False)
    commit(project, "imp-gold", banking_rows(shared_data, 12, split="test"), gold=True)
    prepare(project, task_profile="classification", eval_fraction=0.25, max_length=32)
    cfg = TrainConfig(
        task_profile="classification",
        method="full",
        lr=2e-4,
        batch_size=8,
        max_length=32,
        threads=1,
        seed=7,
        max_steps=4,
    )
    run = train(project, cfg, rows)
    assert run.status == "completed", run.error
    bundle = export(project, run.run_id, "hf")
    assert bundle.serve.kind == "encoder"

    with pytest.raises(DeploymentError, match="is an encoder .* --target local"):
        deploy(project, bundle.export_id, "vllm", port=1)
    dep = deploy(project, bundle.export_id, "local", threads=1)
    try:
        assert dep.server == "classify" and dep.task_kind == "encoder"
        models = get_json(dep.endpoint + "/models")["data"]
        assert [m["id"] for m in models] == [dep.served_model_name]
        preds = classify(dep.endpoint, dep.served_model_name, ["my card was declined", "how do I top up?"])
        labels = {"Refund_not_showing_up", "activate_my_card", "age_limit", "apple_pay_or_google_pay"}
        assert [p["index"] for p in preds] == [0, 1] and {p["label"] for p in preds} <= labels
        assert abs(sum(preds[0]["scores"].values()) - 1) < 1e-4
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(urllib.request.Request(dep.endpoint + "/classify", data=b'{"input": []}'))
        assert bad.value.code == 400

        from brewslm_core.evaluate import evaluate

        write_pack(project)
        report = evaluate(project, run.run_id, pack="default")
        assert report.promotable, report.not_promotable_reason
        dep = promote(project, dep.deploy_id)
        gold = dep.smoke.gold
        assert dep.status == "promoted" and dep.smoke.one_token in labels
        assert gold.n == 12 and gold.judge == "predicted label equals the gold label"
        assert dep.baseline_pass_rate == gold.passed / 12
        entry = drift(project, dep.deploy_id)
        assert (
            not entry["drifted"] and entry["pass_rate"] == dep.baseline_pass_rate
        )  # same model, same answers
    finally:
        stop(project, dep.deploy_id)
