"""Coach Mode on real project states built from ../shared/data through the real stages: a
mis-mapped import, a failed import, rare labels, PII that blocks, a thin gold set, a run that
does not fit, a run that ran out of memory, a finished run. Every generator is read-only
(every file's sha256 and the event count unchanged), and every action kind is executed."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from brewslm_core import Project, coach, tasks
from brewslm_core.annotate import list_jobs
from brewslm_core.coach.data import REASON_ADVICE, suggest_field_map
from brewslm_core.coach.gold_set import size_suggestion
from brewslm_core.coach.training import trace_advice
from brewslm_core.contracts.coach import Action, Suggestion
from brewslm_core.contracts.reasons import ROW_REJECT_CODES
from brewslm_core.contracts.thresholds import (
    GOLD_ROW_COMFORTABLE_MIN,
    GOLD_ROW_THIN_MAX,
    SUGGESTED_TOPUP_CEILING,
    SUGGESTED_TOPUP_FLOOR,
    topup,
)
from brewslm_core.mapping import LowConfidenceError, commit
from brewslm_core.preflight import preflight
from brewslm_core.prepare import prepare
from brewslm_core.train.runner import train_project

ALPACA = "instruct/bloom-lora_alpaca_data_1k.json"


@pytest.fixture(autouse=True, scope="module")
def _own_registry(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("BREWSLM_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    yield
    mp.undo()


def banking(shared: Path, per_label: dict[int, int]) -> list[dict]:
    """Rows of banking77's test split: label index (sorted) -> how many rows."""
    by: dict[str, list[str]] = {}
    with open(shared / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["category"], []).append(r["text"])
    names = sorted(by)
    return [{"text": t, "label": names[i]} for i, n in per_label.items() for t in by[names[i]][:n]]


def write_csv(path: Path, rows: list[dict]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return f"csv:{path}"


def snapshot(project: Project) -> tuple[dict[str, str], int]:
    files = {str(p.relative_to(project.root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(project.root.rglob("*")) if p.is_file()}
    return files, int(project.events.query("SELECT count(*) AS n FROM run_events")["n"][0])


def titles(items: list[Suggestion]) -> list[str]:
    return [s.title for s in items]


# ---- states ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mismapped(tmp_path_factory, shared_data) -> tuple[Project, str]:
    """An alpaca file where 3 rows in 5 call the answer `response`, committed with output←output."""
    root = tmp_path_factory.mktemp("mismapped")
    rows = json.loads((shared_data / ALPACA).read_text(encoding="utf-8"))[:100]
    for i, r in enumerate(rows):
        if i % 5 < 3:
            r["response"] = r.pop("output")
    src = root / "alpaca.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    project = Project.create(root / "proj")
    commit(project, f"jsonl:{src}", "alpaca",
           {"instruction": "instruction", "input": "input", "output": "output"}, force=True)
    bank = write_csv(root / "bank.csv", banking(shared_data, {0: 5}))
    with pytest.raises(LowConfidenceError):
        commit(project, bank, "alpaca", {"instruction": "text", "output": "label"})
    return project, f"jsonl:{src}"


@pytest.fixture(scope="module")
def classified(tmp_path_factory, shared_data) -> Project:
    """Banking rows with one rare label, a 40-row gold import, prepared; a run that does not fit
    (preflight blocked on memory), a run that ran out of memory and a finished run."""
    root = tmp_path_factory.mktemp("classified")
    project = Project.create(root / "proj")
    commit(project, write_csv(root / "train.csv", banking(shared_data, {0: 40, 1: 40, 2: 40, 3: 4})),
           "classification")
    gold = banking(shared_data, {4: 20, 5: 20})
    commit(project, write_csv(root / "gold.csv", gold), "classification", gold=True)
    prepare(project)
    fits = preflight(project, probe=False)
    preflight(project, {"batch_size": 64}, probe=False, max_memory_mb=fits.estimate.total_mb * 0.9)
    small = {"max_steps": 2, "batch_size": 8, "threads": 1, "max_length": 32}
    oom = train_project(project, {**small, "max_rss_mb": 1})
    assert oom.status == "oom"
    done = train_project(project, small)
    assert done.status == "completed"
    return project


@pytest.fixture(scope="module")
def pii_blocked(tmp_path_factory, shared_data) -> Project:
    from brewslm_core.clean import CleanConfig, clean

    root = tmp_path_factory.mktemp("pii")
    with open(shared_data / "spam" / "SMSSpamCollection", encoding="utf-8") as fh:
        rows = [dict(zip(("label", "text"), line.rstrip("\n").split("\t", 1), strict=True))
                for line in fh][:300]
    project = Project.create(root / "proj")
    commit(project, write_csv(root / "sms.csv", rows), "classification",
           {"text": "text", "label": "label"})
    report = clean(project, CleanConfig(pii_policy="block"))
    assert report.blocked
    return project


# ---- data -------------------------------------------------------------------------------------
def test_missing_field_names_the_column_and_remaps_it(mismapped) -> None:
    project, locator = mismapped
    out = coach.suggest(project, "data")
    top = next(s for s in out if "missing_field" in s.title)
    assert top.severity == "critical"  # 60 of 100 rows
    assert top.title == "100% of rejected rows are `missing_field` — map `response` as output"
    assert "60 of 100 rows (60%)" in top.body
    assert top.action.kind == "run_playbook" and top.action.params["playbook"] == "remap"
    assert top.action.params["field_map"]["output"] == "response"
    # the refused (low confidence) import is reported with its stage, most important first
    failed = [s for s in out if s.title.startswith("Import of csv:")]
    assert failed and failed[0].severity == "critical" and "checking confidence" in failed[0].title
    assert [s.rank for s in out] == sorted(s.rank for s in out)

    result = coach.execute(project, top.action)  # run_playbook: a background re-map
    assert result.status == "started" and result.task_id
    assert tasks.wait(project, result.task_id, timeout=120).state == "succeeded"
    from brewslm_core.mapping import read_imports

    first, second = read_imports(project)
    assert first["accepted"] + second["accepted"] == 100  # every row is committed now
    after = [s for s in coach.suggest(project, "data") if "missing_field" in s.title]
    # the re-import supersedes the first: only its 40 `output` rows (committed by the first
    # import) are left, no longer critical, and no column is left to re-point
    assert [s.severity for s in after] == ["warning"]
    assert "40 of 100 rows (40%)" in after[0].body and after[0].action.kind == "navigate"


def test_every_row_reject_code_has_advice() -> None:
    assert set(REASON_ADVICE) == set(ROW_REJECT_CODES)


def test_suggest_field_map_only_repoints_absent_columns() -> None:
    fmap = {"instruction": "instruction", "output": "output"}
    assert suggest_field_map(fmap, ["instruction", "input", "response"]) == {"output": "response"}
    assert suggest_field_map(fmap, ["instruction", "output"]) == {}
    assert suggest_field_map({"text": "txt", "label": "lbl"}, ["sentence", "category"]) == {
        "text": "sentence", "label": "category"}


def test_rare_label_is_named_with_the_counts(classified) -> None:
    manifest = json.loads(classified.manifest_path.read_text())
    train = manifest["label_counts"]["train"]
    rare = min(train, key=train.get)
    out = coach.suggest(classified, "data")
    s = next(s for s in out if s.title.startswith("label `"))
    others = sorted(train.values())[1]
    assert s.title == f"label `{rare}` has {train[rare]} rows, the others ≥ {others}"
    assert s.action.params == {"playbook": "annotate_topup", "rows": others - train[rare],
                               "label": rare}


# ---- cleaning ---------------------------------------------------------------------------------
def test_pii_block_is_critical_and_the_mask_playbook_unblocks(pii_blocked) -> None:
    from brewslm_core.clean import load_report

    report = load_report(pii_blocked)
    out = coach.suggest(pii_blocked, "cleaning")
    s = out[0]
    assert s.severity == "critical"
    assert s.title == f"PII in {report.pii_docs} of {report.input_rows} rows blocks the dataset"
    assert "phone" in s.body
    assert s.action.params["playbook"] == "clean" and s.action.params["config"]["pii_policy"] == "mask"
    result = coach.execute(pii_blocked, s.action)
    assert result.status == "started"
    assert tasks.wait(pii_blocked, result.task_id, timeout=300).state == "succeeded"
    assert not load_report(pii_blocked).blocked
    assert all(x.severity != "critical" for x in coach.suggest(pii_blocked, "cleaning"))


def test_outlier_cap_exceeded_suggests_the_cap_that_removes_them(pii_blocked) -> None:
    from brewslm_core.clean import CleanConfig, clean, load_report

    report = clean(pii_blocked, CleanConfig(pii_policy="mask", min_quality=0.9,
                                            max_outlier_fraction=0.01))
    assert report.outliers["threshold_exceeded"]
    flagged, n = report.outliers["flagged"], report.input_rows
    s = next(x for x in coach.suggest(pii_blocked, "cleaning") if "score below quality" in x.title)
    assert s.severity == "warning" and s.title.startswith(f"{flagged} of {n} rows")
    cap = s.action.params["config"]["max_outlier_fraction"]
    assert cap >= flagged / n and s.action.params["config"]["min_quality"] == 0.9
    result = coach.execute(pii_blocked, s.action)
    assert tasks.wait(pii_blocked, result.task_id, timeout=300).state == "succeeded"
    after = load_report(pii_blocked)
    assert not after.outliers["threshold_exceeded"] and after.removed_rows >= flagged


def test_uncleaned_and_stale_clean(classified, mismapped) -> None:
    project, _ = mismapped
    s = coach.suggest(project, "cleaning")[0]
    assert s.title.endswith("committed rows have not been cleaned")
    assert s.action.params["playbook"] == "clean"


# ---- gold set ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("gold", "severity"), [
    (0, "critical"), (GOLD_ROW_THIN_MAX, "critical"), (GOLD_ROW_THIN_MAX + 1, "warning"),
    (GOLD_ROW_COMFORTABLE_MIN - 1, "warning"), (GOLD_ROW_COMFORTABLE_MIN, "info"),
])
def test_gold_thresholds_at_each_boundary(gold: int, severity: str) -> None:
    s = size_suggestion(gold)
    assert s.severity == severity and s.title == f"Your gold set has {gold} rows"
    if severity != "info":
        assert s.action.params == {"playbook": "annotate_topup", "rows": topup(gold)}


def test_topup_is_clamped() -> None:
    assert (GOLD_ROW_THIN_MAX, GOLD_ROW_COMFORTABLE_MIN) == (99, 300)
    assert topup(0) == 300 and topup(100) == 200
    assert topup(290) == SUGGESTED_TOPUP_FLOOR == 20  # 10 short: the floor
    assert topup(5000) == SUGGESTED_TOPUP_FLOOR
    assert topup(-1000) == SUGGESTED_TOPUP_CEILING == 500
    assert all(SUGGESTED_TOPUP_FLOOR <= topup(g) <= SUGGESTED_TOPUP_CEILING for g in range(-600, 600))


def test_preflight_reads_the_same_thresholds() -> None:
    from brewslm_core.preflight import gates

    assert gates.topup is topup and gates.GOLD_ROW_THIN_MAX is GOLD_ROW_THIN_MAX


def test_thin_gold_set_opens_an_annotation_job(classified) -> None:
    s = coach.suggest(classified, "gold_set")[0]
    assert s.severity == "critical" and s.title == "Your gold set has 40 rows"
    assert s.action.params == {"playbook": "annotate_topup", "rows": 260}
    before = len(list_jobs(classified))
    result = coach.execute(classified, s.action)
    assert result.status == "done"
    jobs = list_jobs(classified)
    assert len(jobs) == before + 1 and jobs[-1].target_rows == 124  # every committed row it has
    follow = coach.suggest(classified, "gold_set")
    assert any(f"`{jobs[-1].name}`: 124 rows to label" in x.title for x in follow)


# ---- training ---------------------------------------------------------------------------------
def test_training_names_the_config_that_fits_and_the_oom(classified) -> None:
    out = coach.suggest(classified, "training")
    fit = next(s for s in out if s.title.startswith("The run does not fit"))
    changes = fit.action.params["config"]
    assert fit.severity == "critical" and changes.get("batch_size", 64) < 64
    assert fit.title == "The run does not fit: " + " with ".join(
        f"{'batch' if k == 'batch_size' else k} {v}" for k, v in changes.items()) + " does"
    oom = next(s for s in out if "ran out of memory" in s.title)
    assert oom.action.params["config"] == {"batch_size": 4, "grad_accum": 2}
    assert oom.action.params["playbook"] == "retrain"


def test_retrain_and_preflight_playbooks_start_tasks(classified) -> None:
    out = coach.suggest(classified, "training")
    fit = next(s for s in out if s.title.startswith("The run does not fit"))
    started = coach.execute(classified, fit.action)
    assert started.status == "started"
    status = tasks.wait(classified, started.task_id, timeout=300)
    assert status.state == "succeeded", status.error
    assert status.result["passed"] is True  # the suggested batch fits the default budget


def test_trace_advice_overfitting_and_flat_loss() -> None:
    trace = [{"step": s, "split": "train", "loss": 2.0 - 0.01 * s} for s in range(1, 161)]
    for step, loss in ((40, 1.2), (80, 1.0), (120, 0.9), (140, 0.95), (150, 1.0), (160, 1.1)):
        trace.append({"step": step, "split": "eval", "eval_loss": loss})
    out = trace_advice("exp-1", trace, [40, 80, 120, 160])
    assert out[0].title == ("Eval loss rose for the last 3 evaluations while train loss fell — "
                            "stop at step 120's checkpoint")
    assert out[0].action.params["config"] == {"max_steps": 120}
    flat = [{"step": s, "split": "train", "loss": 2.3} for s in range(1, 10)]
    assert trace_advice("exp-2", flat, [])[0].title.startswith("Train loss did not fall")
    assert trace_advice("exp-3", trace[:160], []) == []  # falling loss, no evals: nothing to say


# ---- eval -------------------------------------------------------------------------------------
def test_eval_says_there_is_no_report_yet(classified, mismapped) -> None:
    out = coach.suggest(classified, "eval")
    assert out[0].title.startswith("There is no eval report yet for exp-")
    project, _ = mismapped
    assert coach.suggest(project, "eval")[0].title == "There is no eval report yet: no run has finished"


def test_eval_names_weak_classes_and_opens_a_cluster(classified) -> None:
    from brewslm_core.evaluate import evaluate

    run_id = coach.suggest(classified, "eval")[0].action.params["run_id"]
    report = evaluate(classified, run_id)
    assert report.failure_clusters  # a 2-step run gets plenty wrong
    out = coach.suggest(classified, "eval")
    per_class = report.metrics["per_class"]
    weak = sorted((v["recall"], k) for k, v in per_class.items() if v["recall"] < 0.6)
    clusters = {c.cluster_id: c for c in report.failure_clusters}
    by_class = [s for s in out if s.title.startswith("Class `")]
    assert len(by_class) == len(weak)
    for s, (recall, label) in zip(by_class, weak, strict=True):
        assert s.title.startswith(f"Class `{label}` recall {recall:.2f}")
        if s.action.kind == "augment_from_cluster":
            c = clusters[s.action.params["cluster_id"]]
            assert c.gold_label == label or c.label == label
            assert f"cluster {c.cluster_id} holds {c.size} of its failures" in s.title
    # with the task's starter pack its gates fail after 2 steps: critical, most important first
    from brewslm_core.evaluate import init_pack

    init_pack(classified)
    gated = evaluate(classified, run_id)
    failed = [g for g in gated.gates if not g.passed]
    assert failed and not gated.promotable
    top = coach.suggest(classified, "eval")
    assert [s.severity for s in top[:len(failed)]] == ["critical"] * len(failed)
    assert top[0].title.startswith(f"Gate {failed[0].metric} {failed[0].op} {failed[0].threshold} failed")
    assert "not promotable" in top[0].body
    opened = [s for s in out if s.action.kind == "augment_from_cluster"]
    assert opened, [s.title for s in out]
    result = coach.execute(classified, opened[0].action)
    c = clusters[opened[0].action.params["cluster_id"]]
    assert result.status == "done" and result.result["locator"] == c.source
    assert result.result["rows"] == c.size and "text" in result.result["fields"]


# ---- read-only, actions, contract ---------------------------------------------------------------
def test_every_generator_is_read_only(classified, mismapped, pii_blocked) -> None:
    for project in (classified, mismapped[0], pii_blocked):
        project.events.refresh()
        before = snapshot(project)
        for stage in coach.COACH_STAGES:
            coach.suggest(project, stage)
        coach.suggest_all(project)
        assert snapshot(project) == before


def test_suggestions_are_plain_seed_shaped_dicts(classified) -> None:
    for stage, items in coach.suggest_all(classified).items():
        assert items, stage
        for s in items:
            d = s.to_dict()
            assert set(d) == {"severity", "title", "body", "action"}
            assert set(d["action"]) == {"kind", "label", "params"}
            assert d["action"]["kind"] in coach.ACTION_KINDS
            json.dumps(d)


def test_navigate_changes_nothing_and_bad_actions_say_why(classified) -> None:
    classified.events.refresh()
    before = snapshot(classified)
    done = coach.execute(classified, {"kind": "navigate", "label": "x", "params": {"target": "eval"}})
    assert done.status == "done" and done.result == {"target": "eval"}
    assert snapshot(classified) == before
    with pytest.raises(ValueError, match="unknown action kind"):
        coach.execute(classified, {"kind": "explode", "params": {}})
    with pytest.raises(coach.ActionError, match="unknown playbook 'retrian'.*retrain"):
        coach.execute(classified, Action("run_playbook", "x", {"playbook": "retrian"}))
    with pytest.raises(coach.ActionError, match="needs params"):
        coach.execute(classified, Action("augment_from_cluster", "x", {}))
    with pytest.raises(coach.UnknownStageError):
        coach.suggest(classified, "deploy")


def test_stopped_run_resumes_from_its_checkpoint(classified) -> None:
    state = {"step": 0}
    stopped = train_project(
        classified, {"max_steps": 3, "batch_size": 8, "threads": 1, "max_length": 32,
                     "checkpoint_every": 1},
        cancel=lambda: state["step"] >= 1,
        progress=lambda done, total, msg: state.update(step=done))
    assert stopped.status == "cancelled" and stopped.last_checkpoint
    out = coach.suggest(classified, "training")
    s = next(x for x in out if x.title.startswith(f"Run {stopped.run_id} stopped"))
    assert s.title == f"Run {stopped.run_id} stopped at step 1 of 3 (training_cancelled)"
    assert s.action.params == {"playbook": "resume", "run_id": stopped.run_id}
    started = coach.execute(classified, s.action)
    assert started.status == "started"
    final = tasks.wait(classified, started.task_id, timeout=600)
    assert final.state == "succeeded", final.error
    assert final.result["run_id"] == stopped.run_id and final.result["resumed_from_step"] == 1
    assert final.result["steps"] == 3


def test_action_params_never_name_a_path(classified) -> None:
    for params in ({"playbook": "resume", "run_id": "../../etc"},
                   {"playbook": "retrain", "run_id": "/tmp"},
                   {"playbook": "promote_annotations", "job_id": "../x"}):
        with pytest.raises(coach.ActionError, match="is not an id"):
            coach.execute(classified, Action("run_playbook", "x", params))
    with pytest.raises(coach.ActionError, match="is not an id"):
        coach.execute(classified, Action("augment_from_cluster", "x",
                                         {"cluster_id": "c", "run_id": "../.."}))
