"""Evaluate on small real runs trained from a real manifest: packs, gates, reports, clusters,
events, the judge when its endpoint is down, and the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from test_train_rows import alpaca_rows, banking_rows
from test_train_sft import commit
from typer.testing import CliRunner

from brewslm_core import Project
from brewslm_core.cli import app
from brewslm_core.evaluate import (
    EvalDatasetMissing,
    EvalPackError,
    evaluate,
    init_pack,
    latest_report,
    list_reports,
    load_pack,
)
from brewslm_core.prepare import prepare
from brewslm_core.train.runner import train_project

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, shared_data):
    """A classification project (banking77, 4 intents) with a 4-step MiniLM LoRA run."""
    import torch

    torch.set_num_threads(1)
    project = Project.create(tmp_path_factory.mktemp("eval-cls") / "proj")
    commit(project, "classification", [r["record"] for r in banking_rows(shared_data, 64)])
    prepare(project, task_profile="classification", eval_fraction=0.25, max_length=32)
    result = train_project(project, {"max_steps": 4, "threads": 1, "batch_size": 8, "lr": 1e-3})
    assert result.status == "completed", result.error
    return project, result.run_id


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, shared_data):
    import torch

    torch.set_num_threads(1)
    project = Project.create(tmp_path_factory.mktemp("eval-sft") / "proj")
    commit(project, "alpaca", [r["record"] for r in alpaca_rows(shared_data, 10)])
    prepare(project, task_profile="seq2seq", eval_fraction=0.4, max_length=64)
    result = train_project(project, {"max_steps": 2, "threads": 1, "batch_size": 2, "lora_r": 4,
                                     "lr": 5e-4})
    assert result.status == "completed", result.error
    return project, result.run_id


def write_pack(project: Project, name: str, data: dict) -> Path:
    path = project.root / "evals" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- gates, report, clusters --------------------------------------------------------------
def test_pack_with_a_passing_and_a_failing_gate(cls_run):
    project, run_id = cls_run
    write_pack(project, "release", {
        "dataset": "eval",
        "metrics": ["accuracy", "macro_f1"],
        # a real bar a 4-intent model clears after 4 steps, and a latency no model meets
        "gates": ["accuracy >= 0.4", "latency_p95_ms <= 0.001"],
        "latency_rows": 4,
    })
    report = evaluate(project, run_id, "release")
    ok, slow = report.gates
    assert ok.metric == "accuracy" and ok.passed and ok.value == report.metrics["accuracy"] >= 0.4
    assert slow.metric == "latency_p95_ms" and not slow.passed and slow.value > 0.001
    assert slow.value == report.metrics["latency_p95_ms"] >= report.metrics["latency_p50_ms"]
    assert not report.promotable and "latency_p95_ms <= 0.001 failed" in report.not_promotable_reason

    # the report on disk, read back as the contract deploy reads
    folder = Path(report.path)
    assert folder == project.run_dir(run_id) / "evals" / report.eval_id
    assert latest_report(project, run_id) == report
    examples = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
    n = report.n_examples
    assert len(examples) == n == report.dataset["rows"] and report.dataset["name"] == "eval"
    correct = sum(e["correct"] for e in examples)
    assert report.pass_rate == correct / n
    assert report.metrics["accuracy"] == pytest.approx(correct / n)
    assert all(e["id"] and e["gold"] in report.metrics["per_class"] for e in examples)

    # failure clusters: one per confusion pair, holding exactly the failing examples
    failing = {e["id"] for e in examples if not e["correct"]}
    clusters = report.failure_clusters
    assert {i for c in clusters for i in c.example_ids} == failing
    assert sum(c.size for c in clusters) == len(failing)
    for c in clusters:
        assert c.kind == "confusion_pair" and c.label == f"{c.gold_label} predicted as {c.predicted_label}"
        key = (c.gold_label, c.predicted_label)
        pair = {e["id"] for e in examples if (e["gold"], e["prediction"]) == key}
        assert set(c.example_ids) == pair
        lines = Path(c.source.removeprefix("jsonl:")).read_text().splitlines()
        assert len(lines) == c.size and all("text" in json.loads(line) for line in lines)

    # the event: stage eval, info, parent = the experiment
    events = project.events.list(run_id=report.eval_id)
    assert list(events["stage"]) == ["eval"] and list(events["severity"]) == ["info"]
    assert events["parent_run_id"][0] == run_id
    assert events["payload"][0]["promotable"] is False

    # same model, same rows: the same failures and the same cluster ids
    again = evaluate(project, run_id, "release")
    assert again.eval_id != report.eval_id
    assert [c.cluster_id for c in again.failure_clusters] == [c.cluster_id for c in clusters]
    assert latest_report(project, run_id).eval_id == again.eval_id
    assert [r.eval_id for r in list_reports(project, run_id)] == [report.eval_id, again.eval_id]


def test_all_gates_passed_is_promotable_and_no_pack_is_not(cls_run):
    project, run_id = cls_run
    write_pack(project, "floor", {"gates": ["accuracy >= 0.3", "per_class.*.support >= 1",
                                            "n_examples >= 4"]})
    report = evaluate(project, run_id, "floor")
    assert [g.passed for g in report.gates] == [True, True, True]
    assert report.promotable and report.not_promotable_reason is None
    # "*": the per-class minimum is what the gate compares
    supports = [v["support"] for v in report.metrics["per_class"].values()]
    assert report.gates[1].value == min(supports)
    bare = evaluate(project, run_id)  # no evals/default.yaml in this project: metrics only
    assert bare.pack == "" and bare.gates == () and not bare.promotable
    assert "no eval pack" in bare.not_promotable_reason


def test_eval_init_writes_a_starter_pack_from_the_scoring_mode(cls_run):
    project, run_id = cls_run
    path = init_pack(project, name="starter")
    data = yaml.safe_load(path.read_text())
    assert data["gates"] == ["macro_f1 >= 0.8", "per_class.*.recall >= 0.5"]  # label_match
    pack = load_pack(project, "starter", "classification")
    assert [g.metric for g in pack.gates] == ["macro_f1", "per_class.*.recall"]
    with pytest.raises(FileExistsError, match="exists"):
        init_pack(project, name="starter")


def test_invalid_pack_lists_every_problem(cls_run):
    project, run_id = cls_run
    write_pack(project, "broken", {
        "datset": "eval",
        "dataset": "holdout",
        "gates": ["accuracy >> 0.5", "acuracy >= 0.5",
                  {"metric": "macro_f1", "op": ">=", "threshold": "high"}],
        "max_rows": 0,
    })
    with pytest.raises(EvalPackError) as caught:
        evaluate(project, run_id, "broken")
    problems = caught.value.problems
    assert len(problems) == 6, problems
    text = str(caught.value)
    for part in ("unknown key 'datset' (did you mean 'dataset'?)", "dataset 'holdout'",
                 "'accuracy >> 0.5' is not 'metric op threshold'", "did you mean 'accuracy'",
                 "threshold 'high' is not a number", "max_rows must be a positive integer"):
        assert part in text, part
    with pytest.raises(FileNotFoundError, match="did you mean broken"):
        evaluate(project, run_id, "brokn")


def test_missing_dataset_records_eval_dataset_missing(cls_run):
    project, run_id = cls_run
    write_pack(project, "gone", {"dataset": {"file": "prepared/holdout.jsonl"}, "gates": ["accuracy >= 0.5"]})
    with pytest.raises(EvalDatasetMissing, match="holdout.jsonl is missing"):
        evaluate(project, run_id, "gone")
    events = project.events.list(stage="eval")
    missing = events[events["reason_code"] == "eval_dataset_missing"]
    assert len(missing) == 1 and missing["severity"].iloc[0] == "error"
    assert missing["parent_run_id"].iloc[0] == run_id
    # no manifest gold split either: the same code, with what to do
    write_pack(project, "nogold", {"dataset": "gold", "gates": ["accuracy >= 0.5"]})
    with pytest.raises(EvalDatasetMissing, match="gold"):
        evaluate(project, run_id, "nogold")
    events = project.events.list(stage="eval")
    assert (events["reason_code"] == "eval_dataset_missing").sum() == 2


# ---- generative: text metrics, k-means clusters, the judge ----------------------------------
def test_sft_eval_generates_scores_text_and_skips_an_unreachable_judge(sft_run):
    project, run_id = sft_run
    port = free_port()  # nothing listens there
    write_pack(project, "judged", {
        "gates": ["rougeL >= 0.99", "chrf >= 0"],
        "judge": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "judge", "timeout": 2},
    })
    report = evaluate(project, run_id, "judged")
    m = report.metrics
    assert m["generated_n"] == report.n_examples  # Evaluate generates for every row
    assert 0.0 <= m["rougeL"] <= 1.0 and 0.0 <= m["chrf"] <= 100.0 and m["bleu"] >= 0.0
    assert [g.passed for g in report.gates] == [False, True]
    assert report.judge["status"] == "unavailable" and "judge_correctness" not in m
    assert any("unavailable" in w for w in report.warnings)
    warn = project.events.list(stage="eval")
    judged = warn[warn["reason_code"] == "eval_judge_unavailable"]
    assert len(judged) == 1 and judged["severity"].iloc[0] == "warning"
    assert judged["parent_run_id"].iloc[0] == run_id
    examples = [json.loads(x) for x in (Path(report.path) / "examples.jsonl").read_text().splitlines()]
    failing = {e["id"] for e in examples if not e["correct"]}
    assert {i for c in report.failure_clusters for i in c.example_ids} == failing
    assert all(c.kind == "embedding_kmeans" for c in report.failure_clusters)


# ---- CLI ------------------------------------------------------------------------------------
def test_cli_predict_and_eval(cls_run):
    project, run_id = cls_run
    runner = CliRunner()
    out = runner.invoke(app, ["predict", str(project.root), run_id, "my card is lost", "--json"])
    assert out.exit_code == 0, out.output
    [pred] = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(pred) == {"label", "score", "scores"}
    write_pack(project, "cli", {"gates": ["accuracy >= 0.3", "accuracy >= 1.01"]})
    out = runner.invoke(app, ["eval", str(project.root), run_id, "--pack", "cli", "--json"])
    assert out.exit_code == 1, out.output  # a failing gate is a failing exit status
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert [g["passed"] for g in data["gates"]] == [True, False] and data["promotable"] is False
    out = runner.invoke(app, ["eval", "init", str(project.root), "--name", "fromcli"])
    assert out.exit_code == 0 and (project.root / "evals" / "fromcli.yaml").is_file()
    out = runner.invoke(app, ["eval", str(project.root), run_id, "--pack", "nope"])
    assert out.exit_code == 2 and "no eval pack 'nope'" in out.output


def test_text_failures_cluster_by_meaning_with_stable_ids(tmp_path, shared_data):
    from brewslm_core.evaluate.clusters import failure_clusters

    banking = banking_rows(shared_data, 6, labels=1)  # one intent: card activation questions
    cooking = [{"record": {"text": t}} for t in (
        "How long should I boil an egg for a runny yolk?", "What temperature do I roast a chicken at?",
        "Give me a recipe for pancakes with blueberries.", "How do I make bread rise faster?",
        "What spices go into a curry?", "How can I keep pasta from sticking together?")]
    rows = banking + cooking
    examples = [{"index": i, "id": f"row-{i}", "correct": False} for i in range(len(rows))]
    examples.append({"index": 0, "id": "row-ok", "correct": True})  # passing: in no cluster
    first = failure_clusters("seq2seq", examples, rows, tmp_path / "a")
    assert len(first) == 2  # k = round(sqrt(12 / 2)) = 2
    groups = sorted(sorted(c.example_ids) for c in first)
    assert groups == sorted([sorted(f"row-{i}" for i in range(6)), sorted(f"row-{i}" for i in range(6, 12))])
    again = failure_clusters("seq2seq", list(reversed(examples)), rows, tmp_path / "b")
    assert {c.cluster_id for c in again} == {c.cluster_id for c in first}


def test_judge_through_a_real_transformers_serve_endpoint(sft_run, tmp_path):
    """The judge talks to a real OpenAI-compatible server (``transformers serve`` with SmolLM2):
    grades come back per example and as metrics. A 135M judge is no good judge; the test is
    about the path, not the grades."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    project, run_id = sft_run
    serve = shutil.which("transformers", path=str(Path(sys.executable).parent))
    assert serve, "the transformers CLI is part of the dev environment"
    plan = json.loads((project.run_dir(run_id) / "plan.json").read_text())
    judge_model = plan["base_model_path"]
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([serve, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                             judge_model], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("transformers serve did not come up: " + (tmp_path / "serve.log").read_text()[-2000:])
        write_pack(project, "real-judge", {
            "gates": ["judge_correctness >= 0"],
            "judge": {"base_url": f"http://127.0.0.1:{port}/v1", "model": judge_model, "max_rows": 2,
                      "timeout": 600},
        })
        report = evaluate(project, run_id, "real-judge")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert report.judge["status"] == "used" and report.judge["judged"] == 2
    assert report.metrics["judge_n"] == 2
    value = report.metrics["judge_correctness"]
    assert value is None or 0.0 <= value <= 1.0
    examples = [json.loads(x) for x in (Path(report.path) / "examples.jsonl").read_text().splitlines()]
    assert sum("judge_correctness" in e for e in examples) == 2
    assert not report.warnings


def test_a_registered_user_metric_is_computed_and_gated(cls_run):
    from brewslm_core.evaluate import METRICS

    name = "top_class_share"
    if name not in METRICS:
        @METRICS.register(name)
        def top_class_share(examples, rows):
            """Share of examples predicted as the most predicted class (a collapse detector)."""
            from collections import Counter

            counts = Counter(e["prediction"] for e in examples)
            return counts.most_common(1)[0][1] / len(examples)

    project, run_id = cls_run
    write_pack(project, "custom", {"metrics": [name], "gates": [f"{name} <= 0.99"]})
    report = evaluate(project, run_id, "custom")
    examples = [json.loads(x) for x in (Path(report.path) / "examples.jsonl").read_text().splitlines()]
    most = max(sum(e["prediction"] == p for e in examples) for p in {e["prediction"] for e in examples})
    assert report.metrics[name] == most / len(examples)
    assert report.gates[0].metric == name and report.gates[0].value == report.metrics[name]
