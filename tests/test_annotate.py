"""Annotation jobs over real banking77 rows: the queue, labels with the reviewer as actor, the
three events, a restart in between, and promotion into Prepare's gold split (kept apart)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brewslm_core import Project, coach
from brewslm_core.annotate import (
    AnnotationError,
    create_job,
    items,
    job,
    list_jobs,
    promote,
    submit_label,
)
from brewslm_core.mapping import commit
from brewslm_core.prepare import Manifest, prepare


@pytest.fixture(autouse=True)
def _own_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BREWSLM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture()
def committed(project: Project, shared_data: Path, tmp_path: Path) -> Project:
    by: dict[str, list[str]] = {}
    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["category"], []).append(r["text"])
    rows = [{"text": t, "label": lab} for lab in sorted(by)[:4] for t in by[lab][:25]]
    src = tmp_path / "bank.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "label"])
        w.writeheader()
        w.writerows(rows)
    commit(project, f"csv:{src}", "classification")
    return project


def ann_events(project: Project) -> list[dict]:
    frame = project.events.query(
        "SELECT reason_code, actor, payload FROM run_events WHERE reason_code LIKE 'annotation_%' "
        "ORDER BY id")
    return [{**r, "payload": json.loads(r["payload"])} for r in frame.to_dict(orient="records")]


def test_label_restart_promote_prepare(committed: Project) -> None:
    new = create_job(committed, "top-up", target_rows=12, actor="lead")
    assert new.target_rows == 12 and new.labelled == 0 and len(new.labels) == 4
    queue = items(committed, new.job_id)
    assert len(queue) == 12 and all(i.label is None and i.suggested in new.labels for i in queue)
    for it in queue[:8]:
        submit_label(committed, new.job_id, it.item_id, it.suggested, actor="ana")
    submit_label(committed, new.job_id, queue[0].item_id, new.labels[0], actor="ben")  # a re-label

    # a "kernel restart": a fresh Project object reads the queue state from disk
    again = Project.open(committed.root)
    state = job(again, new.job_id)
    assert (state.labelled, state.promoted) == (8, 0)
    assert len(items(again, new.job_id, pending_only=True)) == 4
    assert items(again, new.job_id)[0].label == new.labels[0]
    assert items(again, new.job_id)[0].actor == "ben"

    assert promote(again, new.job_id, actor="lead") == 8
    assert promote(again, new.job_id) == 0  # nothing new to promote
    events = ann_events(again)
    assert [e["reason_code"] for e in events] == (["annotation_job_created"]
                                                  + ["annotation_label_submitted"] * 9
                                                  + ["annotation_rows_promoted"])
    assert events[0]["payload"] == {"job_id": new.job_id, "name": "top-up",
                                    "label_type": "classification", "target_rows": 12,
                                    "source": "committed", "labels": list(new.labels)}
    assert [e["actor"] for e in events[1:10]] == ["ana"] * 8 + ["ben"]
    assert events[-1]["payload"]["rows"] == 8

    manifest = prepare(again)
    assert manifest.counts["gold"] == 8
    gold = list(manifest.iter_split(again, "gold"))
    gold_texts = {r["record"]["text"] for r in gold}
    others = [r["record"]["text"] for s in ("train", "eval") for r in manifest.iter_split(again, s)]
    assert not gold_texts & set(others)  # kept apart: the labelled texts left train/eval
    assert manifest.excluded.get("gold_overlap") == 8
    assert manifest.counts["train"] + manifest.counts["eval"] == 100 - 8
    assert Manifest.load(again).source["annotation_job_ids"] == [new.job_id]
    assert {r["record"]["label"] for r in gold if r["record"]["text"] == queue[0].text} == {new.labels[0]}

    # the gold_set coach counts the promoted rows
    s = coach.suggest(again, "gold_set")[0]
    assert s.title == "Your gold set has 8 rows" and s.action.params["rows"] == 292


def test_bad_requests_say_what_to_do(committed: Project) -> None:
    new = create_job(committed, "x", target_rows=3)
    with pytest.raises(AnnotationError, match="not in job"):
        submit_label(committed, new.job_id, 0, "no-such-label", actor="ana")
    with pytest.raises(AnnotationError, match="has no item 99"):
        submit_label(committed, new.job_id, 99, new.labels[0], actor="ana")
    with pytest.raises(AnnotationError, match="reviewer"):
        submit_label(committed, new.job_id, 0, new.labels[0], actor=" ")
    with pytest.raises(AnnotationError, match="not an annotation job id"):
        job(committed, "../../etc")
    with pytest.raises(AnnotationError, match="no annotation job"):
        job(committed, "ann-0000000000")
    with pytest.raises(AnnotationError, match="label_type"):
        create_job(committed, "y", label_type="spans")
    with pytest.raises(AnnotationError, match="prepare"):
        create_job(committed, "z", source="eval")  # nothing prepared yet


def test_cli_round_trip(committed: Project) -> None:
    from brewslm_core.cli import app

    run = CliRunner().invoke
    root = str(committed.root)
    created = run(app, ["annotate", "create", root, "cli job", "--rows", "3", "--actor", "ana"])
    assert created.exit_code == 0, created.output
    job_id = json.loads(created.output)["job_id"]
    pending = json.loads(run(app, ["annotate", "next", root, job_id]).output)
    assert len(pending) == 3
    labelled = run(app, ["annotate", "label", root, job_id, str(pending[0]["item_id"]),
                         pending[0]["suggested"], "--actor", "ana"])
    assert labelled.exit_code == 0, labelled.output
    bad = run(app, ["annotate", "label", root, job_id, "0", "nope", "--actor", "ana"])
    assert bad.exit_code == 2 and "not in job" in bad.output
    promoted = json.loads(run(app, ["annotate", "promote", root, job_id]).output)
    assert promoted == {"job_id": job_id, "promoted": 1}
    listed = json.loads(run(app, ["annotate", "list", root]).output)
    assert [(j["labelled"], j["promoted"]) for j in listed] == [(1, 1)]
    assert len(list_jobs(committed)) == 1
