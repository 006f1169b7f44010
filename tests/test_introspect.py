"""Introspection on the real files in ../shared/data: the right shape ranks first.

Expectations table (locator, expected top shape, rows in the file per SOURCES.md). The map dry
run over the same file must account for every one of those rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from brewslm_core.contracts import FORCE_THRESHOLD, SHAPES
from brewslm_core.ingest import IngestError
from brewslm_core.introspect import introspect
from brewslm_core.mapping import dry_run

EXPECTED = [
    ("csv:banking77/train.csv", "classification", 10003),
    ("spam/SMSSpamCollection", "classification", 5574),
    ("csv:safety/davidson_hate_offensive_labeled_data.csv", "safety", 24783),
    ("json:qa_squad/squad_v2_dev_Normans_subset.json", "extractive_qa", 208),
    ("conll:ner/wnut17_emerging.dev.conll", "token_classification", 1009),
    ("json:ner/restaurant8k_span_train_3.json", "span_extraction", 1024),
    ("json:instruct/llamafactory_alpaca_en_demo.json", "alpaca", 999),
    ("json:instruct/bloom-lora_alpaca_data_1k.json", "alpaca", 1000),
    ("json:instruct/llamafactory_identity_templated.json", "alpaca", 91),
    ("jsonl:instruct/stanford_alpaca_seed_tasks.jsonl", "alpaca", 175),
    ("json:instruct/llamafactory_glaive_toolcall_en_demo_sharegpt.json", "sharegpt", 300),
    ("json:preference/llamafactory_kto_en_demo.json", "kto", 300),
    ("json:preference/llamafactory_dpo_en_demo.json", "preference", 300),
    ("jsonl:preference/hh-rlhf_harmless-base_test.jsonl.gz", "preference", 2312),
    ("tsv:seq2seq/tatoeba_manythings_hin-eng.txt", "seq2seq", 3117),
    ("jsonl:seq2seq/dialogsum.dev.jsonl", "seq2seq", 500),
    ("json:rag/hotpot_dev_distractor_v1_first53.json", "rag", 53),
    ("json:vision_language/easy_vqa_test/questions.json", "vision_language", 9673),
    ("json:vision_language/llamafactory_mllm_demo/mllm_demo.json", "vision_language", 6),
    ("dir:audio_fsdd/recordings", "audio_transcript", 300),
]


def locate(shared_data, spec: str) -> str:
    kind, sep, rel = spec.partition(":")
    if not sep:
        return str(shared_data / spec)
    return f"{kind}:{shared_data / rel}"


@pytest.mark.parametrize("spec,shape,rows", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_top_hypothesis_and_dry_run_accounts_for_every_row(shared_data, spec, shape, rows):
    locator = locate(shared_data, spec)
    found = introspect(locator)
    assert found, "no hypotheses at all"
    assert found[0].shape == shape, [(h.shape, h.confidence, h.rationale) for h in found[:3]]
    confidences = [h.confidence for h in found]
    assert confidences == sorted(confidences, reverse=True)
    for h in found:
        assert h.shape in SHAPES and 0.0 <= h.confidence <= 1.0 and h.rationale
        assert h.mapping.shape == h.shape and h.mapping.confidence == h.confidence
        json.dumps(h.to_dict())  # hypotheses travel to widgets and the CLI as JSON
    report = dry_run(locator, shape)
    assert report.total == rows
    assert report.accepted + report.rejected == report.total
    assert sum(report.by_reason.values()) == report.rejected
    assert report.accepted > 0.5 * rows


def test_safety_label_meaning_is_learned_from_the_vote_columns(shared_data):
    top = introspect(locate(shared_data, "csv:safety/davidson_hate_offensive_labeled_data.csv"))[0]
    opts = top.mapping.options
    assert top.confidence >= FORCE_THRESHOLD
    assert opts["label_names"] == {"0": "hate_speech", "1": "offensive_language", "2": "neither"}
    assert opts["safe_values"] == ["2"] and sorted(opts["unsafe_values"]) == ["0", "1"]
    report = dry_run(locate(shared_data, "csv:safety/davidson_hate_offensive_labeled_data.csv"),
                     "safety", sample_size=50)
    labels = {r.record["label"] for r in report.accepted_sample}
    assert labels <= {"safe", "unsafe"} and "unsafe" in labels
    assert all(r.record["categories"] for r in report.accepted_sample
               if r.record["label"] == "unsafe")


def test_squad_unanswerable_questions_have_no_answers(shared_data):
    report = dry_run(locate(shared_data, "json:qa_squad/squad_v2_dev_Normans_subset.json"),
                     "extractive_qa", sample_size=500)
    empty = [r for r in report.accepted_sample if not r.record["answers"]]
    assert len(empty) == 112  # SOURCES.md: 112 is_impossible questions
    for row in report.accepted_sample:
        for ans in row.record["answers"]:
            ctx = row.record["context"]
            assert ctx[ans["start"]:ans["start"] + len(ans["text"])] == ans["text"]


def test_sentinel_rows_lower_confidence_and_are_explained(shared_data):
    clean = introspect(locate(shared_data, "json:instruct/llamafactory_alpaca_en_demo.json"))[0]
    dirty = introspect(shared_data / "dirty" / "invalid_json_unquoted_value_alpaca_data.json")
    top = dirty[0]
    assert top.shape == "alpaca"
    assert top.confidence < clean.confidence
    assert "could not be parsed" in top.rationale


# Dirty files: the honest answer. Generic tables have no task structure, so the best guess is
# plain `text` (or a weak `classification`) below the force threshold; non-data is an error.
DIRTY_SPECIAL = {
    "lfs_pointer_hh-rlhf_helpful-base_test.jsonl.gz": "error",
    "csvkit_testjson_multiline.json": "nothing",  # two rows of integers: no text to train on
    "invalid_json_unquoted_value_alpaca_data.json": "alpaca",
    "truncated_json_hotpot_dev_distractor_v1.json": "rag",
}


def dirty_files():
    # Same default as the shared_data fixture (collection time cannot use fixtures).
    repo = Path(__file__).resolve().parents[1]
    folder = Path(os.environ.get("BREWSLM_SHARED_DATA", repo.parent / "shared" / "data")) / "dirty"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(("LICENSE", "README")))


@pytest.mark.parametrize("name", dirty_files())
def test_dirty_files_get_an_honest_answer(shared_data, name):
    path = shared_data / "dirty" / name
    expect = DIRTY_SPECIAL.get(name, "weak")
    if expect == "error":
        with pytest.raises(IngestError, match="git-lfs pointer"):
            introspect(str(path))
        return
    found = introspect(str(path))
    if expect == "nothing":
        assert found == []
        return
    assert found, "a table with text should at least be readable as text"
    if expect == "weak":
        assert found[0].shape in ("text", "classification")
        assert found[0].confidence < FORCE_THRESHOLD, found[0].rationale
    else:
        assert found[0].shape == expect
    report = dry_run(str(path), found[0].shape)
    assert report.accepted + report.rejected == report.total


def test_truncated_file_keeps_its_broken_tail_as_unparseable(shared_data):
    report = dry_run(str(shared_data / "dirty" / "truncated_json_hotpot_dev_distractor_v1.json"),
                     "rag")
    assert (report.total, report.accepted, report.sentinel) == (54, 53, 1)
    assert report.by_reason == {"unparseable_row": 1}


STRUCTURES = [
    # Same shapes under other names and layouts: content decides, not exact keys.
    ([{"prompt": f"Write a haiku about {w}.", "completion": f"{w} in the rain, quiet {w}"}
      for w in ("moss", "stone", "river", "crow", "snow", "tea")], "prompt_completion"),
    ([{"question": f"Who built tower {i}?", "context": f"Tower {i} was built by Ann in {1900 + i}.",
       "answers": {"text": ["Ann"], "answer_start": [len(f"Tower {i} was built by ")]}}
      for i in range(8)], "extractive_qa"),
    ([{"words": ["Ann", "met", "Bo", str(i)], "ner_tags": [1, 0, 1, 0]} for i in range(8)],
     "token_classification"),
    ([{"comment_text": f"you are a {w} person and I mean it {i}", "toxic": i % 2}
      for i, w in enumerate(["kind", "vile", "nice", "awful", "calm", "rude"])], "safety"),
    ([{"review": f"The film number {i} was {w} from start to end", "sentiment": w}
      for i, w in enumerate(["great", "bad"] * 5)], "classification"),
    ([{"en": f"The house number {i} is red.", "hi": f"घर नंबर {i} लाल है।"} for i in range(8)],
     "seq2seq"),
    ([{"messages": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": f"What is {i} + {i}?"},
                    {"role": "assistant", "content": str(2 * i)}]} for i in range(6)],
     "openai_messages"),
    ([{"id": str(i), "question": f"Which came first, A{i} or B{i}?", "answer": f"A{i}",
       "context": {"title": [f"A{i}", f"B{i}", "C"],
                   "sentences": [[f"A{i} was founded in 1900."], [f"B{i} came in 1950."],
                                 ["C is unrelated."]]},
       "supporting_facts": {"title": [f"A{i}", f"B{i}"], "sent_id": [0, 0]}} for i in range(6)],
     "rag"),
    ([{"text": f"Chapter {i}. " + "It was a bright cold day in April, and the clocks were "
       "striking thirteen, while the wind blew dust along the empty street. " * 2}
      for i in range(6)], "text"),
    ([{"prompt": f"q{i}?", "chosen": [{"role": "user", "content": f"q{i}?"},
                                      {"role": "assistant", "content": "good"}],
       "rejected": [{"role": "user", "content": f"q{i}?"},
                    {"role": "assistant", "content": "bad"}]} for i in range(6)], "preference"),
]


@pytest.mark.parametrize("rows,shape", STRUCTURES, ids=[s for _, s in STRUCTURES])
def test_content_not_only_key_names(tmp_path, rows, shape):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    found = introspect(f"jsonl:{path}")
    assert found[0].shape == shape, [(h.shape, h.confidence, h.rationale) for h in found[:3]]
    report = dry_run(f"jsonl:{path}", shape)
    assert (report.total, report.accepted) == (len(rows), len(rows)), report.by_reason


def test_media_rows_point_at_real_files(shared_data):
    audio = dry_run(f"dir:{shared_data / 'audio_fsdd' / 'recordings'}", "audio_transcript",
                    sample_size=300)
    assert audio.accepted == 300
    for row in audio.accepted_sample:
        path = Path(row.record["audio"])
        assert path.is_absolute() and path.is_file()
        digit = path.name.split("_")[0]  # {digit}_{speaker}_{index}.wav
        assert row.record["text"] == "zero one two three four five six seven eight nine".split()[
            int(digit)]
    vqa = dry_run(f"json:{shared_data / 'vision_language' / 'easy_vqa_test' / 'questions.json'}",
                  "vision_language", sample_size=3)
    for row in vqa.accepted_sample:
        assert Path(row.record["images"][0]).is_file()
        user, assistant = row.record["messages"]
        assert user["content"].startswith("<image>") and assistant["role"] == "assistant"
