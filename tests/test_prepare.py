"""Prepare through the real code path: real rows from ../shared/data, committed with
append_commit, the real tokenizers, the real event store."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from brewslm_core import Project
from brewslm_core.contracts.prepare import Manifest, ManifestError
from brewslm_core.contracts.reasons import SHAPE_TASK_PROFILE
from brewslm_core.mapping.shapes import text_hash
from brewslm_core.mapping.store import append_commit
from brewslm_core.prepare import PrepareError, prepare


# ---- helpers ----------------------------------------------------------------------------
def commit(project: Project, import_id: str, shape: str, records: list[dict], *,
           gold: bool = False) -> None:
    rows = [
        {"import_id": import_id, "row_index": i, "shape": shape,
         "task_profile": SHAPE_TASK_PROFILE[shape], "config_id": f"cfg-{import_id}",
         "text_hash": text_hash(shape, rec), "record": rec}
        for i, rec in enumerate(records)
    ]
    append_commit(project, rows, {"import_id": import_id, "config_id": f"cfg-{import_id}",
                                  "shape": shape, "gold": gold, "locator": f"test:{import_id}"})


def banking(shared: Path, split: str = "test", limit: int | None = None) -> list[dict]:
    with open(shared / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as fh:
        rows = [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(fh)]
    return rows[:limit] if limit else rows


def dialogsum(shared: Path, limit: int) -> list[dict]:
    out = []
    with open(shared / "seq2seq" / "dialogsum.dev.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append({"source": r["dialogue"], "target": r["summary"]})
            if len(out) == limit:
                break
    return out


def squad(shared: Path) -> list[dict]:
    data = json.loads((shared / "qa_squad" / "squad_v2_dev_Normans_subset.json").read_text())
    out = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else qa["answers"][:1]
                out.append({"question": qa["question"], "context": para["context"],
                            "answers": [{"text": a["text"], "start": a["answer_start"]}
                                        for a in answers]})
    return out


def hashes(project: Project, manifest: Manifest, split: str) -> list[str]:
    return [r["text_hash"] for r in manifest.iter_split(project, split)]


def events(project: Project, **filters) -> list[dict]:
    return project.events.list(stage="adapter", **filters).to_dict(orient="records")


# ---- classification: the manifest, stratification, grouping --------------------------------
@pytest.fixture()
def banking_project(project: Project, shared_data: Path) -> Project:
    rows = banking(shared_data)
    commit(project, "b1", "classification", rows)
    # The same 40 texts again in a second import: duplicates must stay on one side.
    commit(project, "b2", "classification", rows[:40])
    return project


def test_classification_manifest_fields(banking_project: Project, shared_data: Path) -> None:
    project = banking_project
    m = prepare(project, seed=5)
    categories = json.loads((shared_data / "banking77" / "categories.json").read_text())

    assert m.task_profile == "classification"
    assert m.output_schema.scoring_mode == "label_match"
    assert m.output_schema.target_field == "label"
    assert list(m.label_set) == sorted(categories)
    assert m.counts["train"] + m.counts["eval"] == 3080 + 40 and m.counts["gold"] == 0
    assert m.source["rows_from"] == "committed"
    assert m.source["config_ids"] == ["cfg-b1", "cfg-b2"]
    assert m.seed == 5 and m.split_policy["stratified"] is True
    assert m.base_model["name"] == "all-minilm-l6-v2" and m.max_length == 128
    assert 0 < m.token_stats.p50 <= m.token_stats.p95 <= m.token_stats.max
    assert set(m.files) == {"train", "eval"}  # no gold import, no gold file

    # Files and counts agree with the manifest, row for row.
    train = m.read_split(project, "train")
    evals = m.read_split(project, "eval")
    assert len(train) == m.files["train"].rows == m.counts["train"]
    assert len(evals) == m.files["eval"].rows == m.counts["eval"]
    assert {r["split"] for r in train} == {"train"} and {r["split"] for r in evals} == {"eval"}
    assert set(train[0]) >= {"import_id", "row_index", "shape", "task_profile", "text_hash",
                             "record"}
    assert m.label_counts["eval"] == dict(Counter(r["record"]["label"] for r in evals))

    # Round trip through JSON on disk.
    assert Manifest.load(project) == m
    assert Manifest.from_dict(json.loads(m.to_json())) == m

    # One info event with the counts.
    info = events(project, severity="info")
    assert len(info) == 1 and info[0]["summary"] == "dataset-prep summary"
    assert info[0]["payload"]["counts"] == m.counts


def test_split_is_stratified_and_grouped(banking_project: Project) -> None:
    project = banking_project
    m = prepare(project, eval_fraction=0.2, seed=11)
    train, evals = hashes(project, m, "train"), hashes(project, m, "eval")
    assert not set(train) & set(evals), "a text_hash is in both train and eval"
    # The 40 duplicated texts: each appears twice, both copies on the same side.
    dup = Counter(train + evals)
    assert sum(1 for n in dup.values() if n >= 2) >= 40

    # Stratified: every label's eval share is close to 20% (a random split strays further).
    per_label_total = Counter()
    for split in ("train", "eval"):
        per_label_total.update(m.label_counts[split])
    for label, total in per_label_total.items():
        assert abs(m.label_counts["eval"].get(label, 0) - 0.2 * total) <= 2, label


def test_deterministic_by_seed(project: Project, tmp_path: Path, shared_data: Path) -> None:
    rows = banking(shared_data, limit=900)
    other = Project.create(tmp_path / "other")
    for p in (project, other):
        commit(p, "b1", "classification", rows)
    a = prepare(project, seed=3)
    a_bytes = {s: (project.root / f.path).read_bytes() for s, f in a.files.items()}
    b = prepare(other, seed=3)  # another project, same rows, same seed
    assert {s: (other.root / f.path).read_bytes() for s, f in b.files.items()} == a_bytes
    assert a.files == b.files
    c = prepare(project, seed=4)
    assert c.files["eval"].sha256 != a.files["eval"].sha256
    again = prepare(project, seed=3)  # re-running rewrites the very same bytes
    assert {s: (project.root / f.path).read_bytes() for s, f in again.files.items()} == a_bytes


def test_few_rows_fall_back_to_a_plain_grouped_split(project: Project, shared_data: Path) -> None:
    rows = banking(shared_data)[::20]  # the file is sorted by label: 2 rows of each of 77
    commit(project, "b1", "classification", rows)
    m = prepare(project)
    assert len(rows) == 154 and len(m.label_set) == 77
    assert m.split_policy["stratified"] is False  # 15 eval rows cannot hold 77 labels
    assert "stratification not possible" in m.split_policy["note"]
    assert m.counts == {"train": 139, "eval": 15, "gold": 0}
    evals = m.read_split(project, "eval")
    assert len({r["record"]["label"] for r in evals}) == 15  # one row each of 15 labels
    assert m.split_policy["labels_missing_from_train"] == []


# ---- gold --------------------------------------------------------------------------------
def test_gold_kept_apart(project: Project, shared_data: Path) -> None:
    train_rows = banking(shared_data, "test", limit=500)
    gold_rows = banking(shared_data, "train", limit=30)
    commit(project, "main", "classification", train_rows + gold_rows[:2])  # 2 gold texts leak in
    commit(project, "gold", "classification", gold_rows, gold=True)
    m = prepare(project)
    assert m.counts["gold"] == 30 and m.files["gold"].rows == 30
    assert m.excluded == {"gold_overlap": 2}
    assert m.source["gold_import_ids"] == ["gold"]
    gold = m.read_split(project, "gold")
    assert {r["split"] for r in gold} == {"gold"} and {r["import_id"] for r in gold} == {"gold"}
    gold_hashes = {r["text_hash"] for r in gold}
    assert not gold_hashes & set(hashes(project, m, "train") + hashes(project, m, "eval"))
    assert m.counts["train"] + m.counts["eval"] == 500


# ---- tamper detection ---------------------------------------------------------------------
def test_tamper_detection(project: Project, shared_data: Path) -> None:
    commit(project, "b1", "classification", banking(shared_data, limit=200))
    m = prepare(project)
    train = project.root / m.files["train"].path
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace('"label": "', '"label": "x')  # a relabelled row, same row count
    train.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ManifestError, match=r"prepared/train\.jsonl.*re-run prepare"):
        Manifest.load(project)
    with pytest.raises(ManifestError, match=r"prepared/train\.jsonl"):
        next(m.iter_split(project, "train"))
    assert len(m.read_split(project, "eval")) == m.counts["eval"]  # untouched file still reads

    prepare(project)  # re-running prepare repairs it
    (project.prepared_dir / "eval.jsonl").unlink()
    with pytest.raises(ManifestError, match=r"prepared/eval\.jsonl is missing"):
        Manifest.load(project)
    with pytest.raises(ManifestError, match="gold"):
        Manifest.load(project, verify=False).verify_file(project, "gold")
    project.manifest_path.unlink()
    with pytest.raises(ManifestError, match="run prepare first"):
        Manifest.load(project)


# ---- cleaned rows -------------------------------------------------------------------------
def test_cleaned_rows_preferred_when_current(project: Project, shared_data: Path) -> None:
    from brewslm_core.clean import CleanConfig, clean

    records = banking(shared_data, limit=300)
    records[0] = {"text": "Card   &amp; PIN   arrived?", "label": records[0]["label"]}
    records.append(dict(records[1]))  # an exact duplicate that clean removes
    commit(project, "b1", "classification", records)
    report = clean(project, CleanConfig(chunk=False, near_dup=False, remove_outliers=False))
    assert report.removed_rows >= 1

    m = prepare(project)
    assert m.source["rows_from"] == "cleaned"
    assert m.counts["train"] + m.counts["eval"] == report.kept_rows
    texts = {r["record"]["text"] for s in ("train", "eval") for r in m.iter_split(project, s)}
    assert "Card & PIN arrived?" in texts and "Card   &amp; PIN   arrived?" not in texts

    # New rows committed after clean: the clean output is stale, committed rows are used.
    commit(project, "b2", "classification", banking(shared_data, "train", limit=20))
    m2 = prepare(project)
    assert m2.source["rows_from"] == "committed" and "stale" in m2.source["note"]
    assert m2.counts["train"] + m2.counts["eval"] == 301 + 20


def test_blocked_clean_is_refused(project: Project, shared_data: Path) -> None:
    from brewslm_core.clean import CleanConfig, clean

    records = banking(shared_data, limit=50)
    records.append({"text": "please email me at jo.bloggs@example.com about it", "label": "x"})
    commit(project, "b1", "classification", records)
    report = clean(project, CleanConfig(chunk=False, pii_policy="block"))
    assert report.blocked
    with pytest.raises(PrepareError, match="blocked"):
        prepare(project)
    assert not project.manifest_path.exists()


# ---- supervision audit --------------------------------------------------------------------
def test_qa_audit_counts_answer_beyond_max_length(project: Project, tmp_path: Path,
                                                  shared_data: Path) -> None:
    records = squad(shared_data)
    commit(project, "sq", "extractive_qa", records)
    base = prepare(project, max_length=384)
    assert base.task_profile == "qa" and base.output_schema.scoring_mode == "span_f1"
    assert base.split_policy["stratified"] is True  # answerable vs unanswerable
    before = base.supervision_audit.by_reason.get("answer_beyond_max_length", 0)

    # Planted: a real answerable question whose context is pushed far past 384 tokens.
    real = next(r for r in records if r["answers"])
    filler = " ".join(r["context"] for r in records[:40:8]) + " "
    planted = {"question": real["question"], "context": filler + real["context"],
               "answers": [{"text": real["answers"][0]["text"],
                            "start": len(filler) + real["answers"][0]["start"]}]}
    assert planted["context"][planted["answers"][0]["start"]:].startswith(
        planted["answers"][0]["text"])
    commit(project, "planted", "extractive_qa", [planted])
    m = prepare(project, max_length=384)
    audit = m.supervision_audit
    assert audit.by_reason["answer_beyond_max_length"] == before + 1
    assert audit.rows_checked == len(records) + 1
    assert m.token_stats.max > 384


def test_chat_audit_counts_planted_rows(project: Project, shared_data: Path) -> None:
    records = dialogsum(shared_data, 40)
    long_target = dict(records[0], target=" ".join([records[0]["target"]] * 40))
    long_source = dict(records[1], source="\n".join([records[1]["source"]] * 12))
    empty_target = dict(records[2], target=" ")
    commit(project, "ds", "seq2seq", records)
    commit(project, "planted", "seq2seq", [long_target, long_source, empty_target])
    m = prepare(project, max_length=1024)
    assert m.task_profile == "seq2seq" and m.output_schema.scoring_mode == "bleu_rouge"
    assert m.base_model["name"] == "smollm2-135m-instruct"
    assert m.supervision_audit.by_reason == {
        "empty_target": 1, "target_fully_masked": 1, "target_truncated": 1}
    planted = {e["row_index"]: e["reasons"] for e in m.supervision_audit.examples
               if e["import_id"] == "planted"}
    assert planted == {0: ["target_truncated"], 1: ["target_fully_masked"],
                       2: ["empty_target"]}


# ---- profile choice and schema mismatch -----------------------------------------------------
def test_schema_mismatch_event_and_explicit_choice(project: Project, shared_data: Path) -> None:
    commit(project, "b1", "classification", banking(shared_data, limit=100))
    commit(project, "ds", "seq2seq", dialogsum(shared_data, 20))

    with pytest.raises(PrepareError, match="several task profiles") as info:
        prepare(project)
    assert info.value.reason_code == "adapter_schema_mismatch"
    errors = events(project, severity="error")
    assert [e["reason_code"] for e in errors] == ["adapter_schema_mismatch"]
    assert errors[0]["payload"]["rows_by_profile"] == {"classification": 100, "seq2seq": 20}
    assert not project.manifest_path.exists()

    m = prepare(project, task_profile="classification")
    assert m.excluded == {"other_task_profile": 20}
    assert m.source["task_profile_chosen_by"] == "argument"

    with pytest.raises(PrepareError) as info:
        prepare(project, task_profile="qa")  # declared, but no row has it
    assert info.value.reason_code == "adapter_schema_mismatch"
    with pytest.raises(PrepareError, match="neither a task profile") as info:
        prepare(project, task_profile="clasification")
    assert info.value.reason_code == "adapter_field_resolution_failed"


def test_preset_in_project_config_picks_the_profile(tmp_path: Path, shared_data: Path) -> None:
    project = Project.create(tmp_path / "p", adapter={"preset": "classification"})
    commit(project, "b1", "classification", banking(shared_data, limit=80))
    commit(project, "ds", "seq2seq", dialogsum(shared_data, 5))
    m = prepare(Project.open(project.root))
    assert m.task_profile == "classification" and m.excluded == {"other_task_profile": 5}
    assert m.source["task_profile_chosen_by"] == "preset"


def test_bad_inputs_get_clear_errors(project: Project, shared_data: Path) -> None:
    with pytest.raises(PrepareError, match="no committed rows"):
        prepare(project)
    commit(project, "b1", "classification", banking(shared_data, limit=1))
    with pytest.raises(PrepareError, match="at least 2 distinct rows"):
        prepare(project)
    with pytest.raises(PrepareError, match="eval_fraction"):
        prepare(project, eval_fraction=1.5)
    commit(project, "b2", "classification", banking(shared_data, "train", limit=10))
    with pytest.raises(PrepareError, match="seed must be"):
        prepare(project, seed=-1)
    with pytest.raises(PrepareError, match=r"more than all-minilm-l6-v2 accepts \(512"):
        prepare(project, max_length=1024)
    assert not project.manifest_path.exists()
