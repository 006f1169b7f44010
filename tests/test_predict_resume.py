"""load_run on a resumed run: trained 2 steps with checkpoints, stopped, resumed to 4; the reloaded
model scores the eval rows with the loss the resumed run reported at step 4 (so load_run reads the
final weights, not the step-2 checkpoint), which is also the loss of the same run trained straight
through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_predict_handlers import same_loss, tiny
from test_train_rows import banking_rows

from brewslm_core.predict import load_run, predict
from brewslm_core.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_resumed_run_reloads_with_its_final_weights(project, shared_data, method):
    import torch

    torch.set_num_threads(1)
    rows, eval_rows = banking_rows(shared_data, 32), banking_rows(shared_data, 12, split="test")
    cfg = tiny("classification", method=method, max_steps=4, batch_size=8, checkpoint_every=1)

    seen: list[int] = []
    first = train(project, cfg, rows, eval_rows, progress=lambda step, total, msg: seen.append(step),
                  cancel=lambda: bool(seen) and seen[-1] >= 2)
    assert first.status == "cancelled" and first.steps == 2, first.error
    resumed = train(project, cfg, rows, eval_rows, run_id=first.run_id, resume=True)
    assert resumed.status == "completed", resumed.error
    assert resumed.resumed_from_step == 2 and resumed.steps == 4

    loaded = load_run(project, resumed.run_id)
    assert loaded.run_id == first.run_id and not loaded.model.training
    assert loaded.weights_dir == Path(resumed.adapter_dir)
    plan = json.loads((project.run_dir(first.run_id) / "plan.json").read_text())
    assert loaded.plan == plan and plan["config"]["max_steps"] == 4
    scores = same_loss(loaded, eval_rows, resumed)

    straight = train(project, cfg, rows, eval_rows)  # the same run, never stopped
    assert straight.status == "completed", straight.error
    assert scores["eval_loss"] == pytest.approx(straight.eval["eval_loss"], rel=1e-4, abs=1e-5)

    out = predict(project, resumed.run_id, ["I still have not received my new card"])
    assert out[0]["label"] in loaded.handler.labels
