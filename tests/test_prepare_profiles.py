"""Prepare across task profiles, on real rows from ../shared/data: scoring mode, strata, audit."""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

import pytest
from test_prepare import banking, commit

from brewslm_core import Project
from brewslm_core.prepare import PrepareError, prepare


def wnut(shared: Path, limit: int) -> list[dict]:
    sentences, tokens, tags = [], [], []
    for line in (shared / "ner" / "wnut17_emerging.dev.conll").read_text("utf-8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        word, tag = line.split("\t")
        tokens.append(word)
        tags.append(tag)
    return sentences[:limit]


def restaurant(shared: Path, limit: int) -> list[dict]:
    data = json.loads((shared / "ner" / "restaurant8k_span_train_3.json").read_text("utf-8"))
    out = []
    for ex in data[:limit]:
        spans = [{"label": lab["slot"], "start": lab["valueSpan"].get("startIndex", 0),
                  "end": lab["valueSpan"]["endIndex"]} for lab in ex.get("labels", [])]
        out.append({"text": ex["userInput"]["text"], "spans": spans})
    return out


def test_token_classification_audit_finds_cut_entities(project: Project,
                                                       shared_data: Path) -> None:
    records = wnut(shared_data, 200)
    # Planted: a long sentence whose only entity sits at its very end.
    long = {"tokens": ["word"] * 300 + ["Paris"], "tags": ["O"] * 300 + ["B-location"]}
    commit(project, "w", "token_classification", records)
    before = prepare(project, max_length=64).supervision_audit.by_reason.get(
        "tagged_tokens_beyond_max_length", 0)
    commit(project, "planted", "token_classification", [long])
    m = prepare(project, max_length=64)
    assert m.task_profile == "structured_extraction"
    assert m.output_schema.scoring_mode == "span_set" and m.output_schema.target_field == "tags"
    assert m.base_model["name"] == "all-minilm-l6-v2"
    assert m.supervision_audit.by_reason["tagged_tokens_beyond_max_length"] == before + 1
    # A 512-token window keeps every entity, the planted one included.
    assert prepare(project, max_length=512).supervision_audit.by_reason == {}


def test_span_extraction_is_scored_by_field(project: Project, shared_data: Path) -> None:
    records = restaurant(shared_data, 150)
    long = {"text": "Hello. " * 200 + "A table for 4 people.", "spans": []}
    long["spans"] = [{"label": "people", "start": len(long["text"]) - 9,
                      "end": len(long["text"]) - 1}]
    commit(project, "r", "span_extraction", records + [long])
    m = prepare(project, max_length=128)
    assert m.output_schema.scoring_mode == "field_match"
    assert m.output_schema.target_field == "spans"
    assert m.supervision_audit.by_reason == {"span_beyond_max_length": 1}
    assert m.supervision_audit.examples[0]["row_index"] == len(records)


def test_kto_is_stratified_by_verdict(project: Project, shared_data: Path) -> None:
    data = json.loads((shared_data / "preference" / "llamafactory_kto_en_demo.json")
                      .read_text("utf-8"))
    records = [{"prompt": ex["messages"][:-1], "completion": ex["messages"][-1]["content"],
                "label": bool(ex["label"])} for ex in data[:120]]
    commit(project, "k", "kto", records)
    m = prepare(project, eval_fraction=0.25, max_length=2048)
    assert m.task_profile == "alignment"
    assert m.output_schema.scoring_mode == "preference_margin"
    assert m.split_policy["stratified"] is True
    evals = m.read_split(project, "eval")
    share = sum(r["record"]["label"] for r in evals) / len(evals)
    total = sum(r["label"] for r in records) / len(records)
    assert abs(share - total) < 0.05


def test_preference_audits_both_answers(project: Project, shared_data: Path) -> None:
    data = json.loads((shared_data / "preference" / "llamafactory_dpo_en_demo.json")
                      .read_text("utf-8"))
    role = {"human": "user", "gpt": "assistant", "system": "system"}
    records = [{"prompt": [{"role": role[t["from"]], "content": t["value"]}
                           for t in ex["conversations"]],
                "chosen": ex["chosen"]["value"], "rejected": ex["rejected"]["value"]}
               for ex in data[:40]]
    planted = dict(records[0], rejected=" ".join(["espresso"] * 5000))  # > 4096 tokens
    commit(project, "p", "preference", records)
    small = prepare(project, max_length=4096).supervision_audit.by_reason.get(
        "target_truncated", 0)
    commit(project, "planted", "preference", [planted])
    m = prepare(project, max_length=4096)
    assert m.output_schema.target_field == "chosen"
    assert m.supervision_audit.by_reason.get("target_truncated", 0) == small + 1


def test_rag_prompt_length_is_audited(project: Project, shared_data: Path) -> None:
    data = json.loads((shared_data / "rag" / "hotpot_dev_distractor_v1_first53.json")
                      .read_text("utf-8"))
    records = [{"question": ex["question"], "answer": ex["answer"],
                "passages": [{"title": t, "text": "".join(s)} for t, s in ex["context"]],
                "supporting": [{"title": t, "sentence": i} for t, i in ex["supporting_facts"]]}
               for ex in data]
    commit(project, "h", "rag", records)
    m = prepare(project, max_length=256)  # ten passages never fit in 256 tokens
    assert m.output_schema.scoring_mode == "faithfulness"
    assert m.supervision_audit.by_reason == {"target_fully_masked": len(records)}
    assert m.token_stats.p50 > 256
    roomy = prepare(project, max_length=8192)
    assert roomy.supervision_audit.by_reason == {}


def test_safety_labels(project: Project, shared_data: Path) -> None:
    path = shared_data / "safety" / "davidson_hate_offensive_labeled_data.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(islice(csv.DictReader(fh), 400))
    names = {"0": ["hate"], "1": ["offensive"], "2": []}
    records = [{"text": r["tweet"], "label": "safe" if r["class"] == "2" else "unsafe",
                "categories": names[r["class"]]} for r in rows]
    commit(project, "s", "safety", records)
    m = prepare(project)
    assert m.task_profile == "safety" and m.output_schema.scoring_mode == "label_match"
    assert m.label_set == ("safe", "unsafe")
    assert sum(m.label_counts["eval"].values()) == m.counts["eval"]
    assert m.split_policy["stratified"] is True


def test_vision_language_exact_match(project: Project, shared_data: Path) -> None:
    folder = shared_data / "vision_language" / "llamafactory_mllm_demo"
    data = json.loads((folder / "mllm_demo.json").read_text("utf-8"))
    records = [{"images": [str((folder / p).resolve()) for p in ex["images"]],
                "messages": ex["messages"]} for ex in data]
    commit(project, "v", "vision_language", records)
    m = prepare(project)
    assert m.task_profile == "vision_language"
    assert m.output_schema.scoring_mode == "exact_match"
    assert m.counts["train"] + m.counts["eval"] == len(records)
    assert m.supervision_audit.by_reason == {}


def test_missing_base_model(tmp_path: Path, shared_data: Path) -> None:


    # Named in the project config but not there: prepared anyway, with a warning event.
    project = Project.create(tmp_path / "p", model={"base": str(tmp_path / "no-model")})
    commit(project, "b", "classification", banking(shared_data, limit=50))
    m = prepare(project)
    assert m.token_stats is None and "tokenizer_error" in m.base_model
    assert m.supervision_audit.rows_checked == 50
    warnings = project.events.list(stage="adapter", severity="warning")
    assert len(warnings) == 1
    # Asked for by the caller: a clear error.
    with pytest.raises(PrepareError, match="cannot plan base model"):
        prepare(project, base_model=str(tmp_path / "no-model"))


@pytest.mark.slow  # builds the whisper tiny.en folder in the model cache on first use
def test_audio_transcripts_scored_by_wer(project: Project, shared_data: Path) -> None:
    words = "zero one two three four five six seven eight nine".split()
    folder = shared_data / "audio_fsdd" / "recordings"
    records = [{"audio": str(path.resolve()), "text": words[int(path.name[0])]}
               for path in sorted(folder.glob("*_0.wav"))]
    long = {"audio": records[0]["audio"], "text": " ".join(["coffee"] * 600)}
    commit(project, "a", "audio_transcript", records + [long])
    m = prepare(project)
    assert m.task_profile == "audio_transcription" and m.output_schema.scoring_mode == "wer"
    assert m.base_model["name"] == "whisper-tiny.en" and m.max_length == 448
    assert m.supervision_audit.by_reason == {"target_truncated": 1}
    assert m.token_stats.p50 < 10 < m.token_stats.max
