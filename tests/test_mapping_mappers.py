"""Per-shape mappers on small hand-written rows: canonical records and every reject code."""

from __future__ import annotations

import pytest

from brewslm_core.contracts import ROW_REJECT_CODES, SHAPES
from brewslm_core.mapping import MAPPERS, RowReject, config_id, record_text, text_hash
from brewslm_core.mapping.fields import lookup
from brewslm_core.mapping.shapes import RECORD_KEYS, UnknownShapeError


def run(shape, row, field_map, options=None, base_dir=None):
    return MAPPERS.get(shape)(row, field_map, options or {}, base_dir)


def rejects(shape, row, field_map, options=None, base_dir=None) -> str:
    with pytest.raises(RowReject) as info:
        run(shape, row, field_map, options, base_dir)
    assert info.value.reason in ROW_REJECT_CODES
    return info.value.reason


def test_every_shape_has_a_mapper_and_record_keys():
    assert set(MAPPERS.names()) == set(SHAPES)
    assert set(RECORD_KEYS) == set(SHAPES)


def test_lookup_nested_paths_and_flat_keys_with_dots():
    row = {"a": {"b": [{"c": 1}]}, "x.y": 2}
    assert lookup(row, "a.b.0.c") == 1
    assert lookup(row, "x.y") == 2
    with pytest.raises(RowReject) as info:
        lookup(row, "a.b.3.c")
    assert info.value.reason == "missing_field"


def test_alpaca_joins_instruction_and_input():
    rec = run("alpaca", {"instruction": "Translate", "input": "bonjour", "output": "hello"},
              {"instruction": "instruction", "input": "input", "output": "output"})
    assert rec == {"messages": [{"role": "user", "content": "Translate\n\nbonjour"},
                                {"role": "assistant", "content": "hello"}]}
    rec = run("alpaca", {"instruction": "Hi", "input": "", "output": "Hello"},
              {"instruction": "instruction", "input": "input", "output": "output"})
    assert rec["messages"][0]["content"] == "Hi"
    fm = {"instruction": "instruction", "output": "output"}
    assert rejects("alpaca", {"instruction": "  ", "output": "x"}, fm) == "empty_text"
    assert rejects("alpaca", {"instruction": "x"}, fm) == "missing_field"
    assert rejects("alpaca", {"instruction": ["x"], "output": "y"}, fm) == "type_mismatch"


def test_sharegpt_roles_tools_and_bad_sequences():
    row = {"conversations": [
        {"from": "human", "value": "weather?"},
        {"from": "function_call", "value": '{"name": "w"}'},
        {"from": "observation", "value": '{"t": 3}'},
        {"from": "gpt", "value": "3 degrees"}]}
    rec = run("sharegpt", row, {"messages": "conversations"}, {"role_key": "from",
                                                               "content_key": "value"})
    assert [m["role"] for m in rec["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert rec["messages"][1]["content"] == '{"name": "w"}'
    bad_role = {"conversations": [{"from": "alien", "value": "x"}, {"from": "gpt", "value": "y"}]}
    assert rejects("sharegpt", bad_role, {"messages": "conversations"}) == "invalid_role_sequence"
    no_bot = {"messages": [{"role": "user", "content": "x"}]}
    assert rejects("openai_messages", no_bot, {"messages": "messages"}) == "invalid_role_sequence"
    empty = {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}
    assert rejects("openai_messages", empty, {"messages": "messages"}) == "empty_text"


def test_classification_labels_are_strings_and_label_set_is_enforced():
    fm = {"text": "t", "label": "y"}
    assert run("classification", {"t": "good film", "y": 1}, fm) == {"text": "good film",
                                                                     "label": "1"}
    assert run("classification", {"t": "x", "y": 0}, fm, {"label_names": ["neg", "pos"]})[
        "label"] == "neg"
    assert rejects("classification", {"t": "x", "y": "maybe"}, fm,
                   {"label_set": ["pos", "neg"]}) == "label_not_in_set"
    assert rejects("classification", {"t": "x", "y": [1]}, fm) == "type_mismatch"


def test_safety_values_and_categories():
    fm = {"text": "tweet", "label": "class"}
    opts = {"unsafe_values": ["0", "1"], "safe_values": ["2"],
            "label_names": {"0": "hate_speech", "1": "offensive_language", "2": "neither"}}
    assert run("safety", {"tweet": "t", "class": "0"}, fm, opts) == {
        "text": "t", "label": "unsafe", "categories": ["hate_speech"]}
    assert run("safety", {"tweet": "t", "class": 2}, fm, opts)["label"] == "safe"
    assert rejects("safety", {"tweet": "t", "class": "7"}, fm, opts) == "label_not_in_set"
    assert run("safety", {"tweet": "t", "class": "toxic"}, fm)["label"] == "unsafe"


def test_preference_from_transcripts_and_message_objects():
    row = {"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: knock",
           "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: no"}
    rec = run("preference", row, {"chosen": "chosen", "rejected": "rejected"})
    assert rec["chosen"] == "knock" and rec["rejected"] == "no"
    assert [m["role"] for m in rec["prompt"]] == ["user", "assistant", "user"]
    row = {"conversations": [{"from": "human", "value": "q"}],
           "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}}
    rec = run("preference", row, {"prompt": "conversations", "chosen": "chosen",
                                  "rejected": "rejected"}, {"role_key": "from"})
    assert rec == {"prompt": [{"role": "user", "content": "q"}], "chosen": "good",
                   "rejected": "bad"}
    assert rejects("preference", {"chosen": "a", "rejected": "b"},
                   {"chosen": "chosen", "rejected": "rejected"}) == "missing_field"


def test_kto_takes_the_last_assistant_turn():
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
           "label": False}
    rec = run("kto", row, {"messages": "messages", "label": "label"})
    assert rec == {"prompt": [{"role": "user", "content": "q"}], "completion": "a",
                   "label": False}
    assert rejects("kto", {**row, "label": "perhaps"}, {"messages": "messages",
                                                        "label": "label"}) == "label_not_in_set"


def test_extractive_qa_offsets_are_checked():
    fm = {"question": "q", "context": "c", "answers": "a"}
    ctx = "The Normans lived in Normandy."
    ok = run("extractive_qa", {"q": "who?", "c": ctx, "a": {"text": ["Normans", "Normans"],
                                                            "answer_start": [4, 4]}}, fm)
    assert ok["answers"] == [{"text": "Normans", "start": 4}]  # repeated annotations collapse
    assert rejects("extractive_qa", {"q": "who?", "c": ctx,
                                     "a": [{"text": "Normans", "answer_start": 5}]},
                   fm) == "span_text_mismatch"
    assert rejects("extractive_qa", {"q": "who?", "c": ctx,
                                     "a": [{"text": "Normans", "answer_start": 40}]},
                   fm) == "span_out_of_bounds"
    unanswerable = run("extractive_qa", {"q": "who?", "c": ctx, "a": [], "imp": True},
                       {**fm, "is_impossible": "imp"})
    assert unanswerable["answers"] == []


def test_token_and_span_extraction():
    rec = run("token_classification", {"tokens": ["Paris", "is"], "tags": [1, 0]},
              {"tokens": "tokens", "tags": "tags"}, {"tag_names": ["O", "B-loc"]})
    assert rec == {"tokens": ["Paris", "is"], "tags": ["B-loc", "O"]}
    assert rejects("token_classification", {"tokens": ["a", "b"], "tags": ["O"]},
                   {"tokens": "tokens", "tags": "tags"}) == "length_mismatch"
    opts = {"span_label_key": "slot", "span_start_key": "valueSpan.startIndex",
            "span_end_key": "valueSpan.endIndex", "missing_start": 0}
    row = {"userInput": {"text": "5 adults"},
           "labels": [{"slot": "people", "valueSpan": {"endIndex": 8}}]}
    rec = run("span_extraction", row, {"text": "userInput.text", "spans": "labels"}, opts)
    assert rec == {"text": "5 adults", "spans": [{"label": "people", "start": 0, "end": 8}]}
    no_spans = run("span_extraction", {"userInput": {"text": "hi"}},
                   {"text": "userInput.text", "spans": "labels"}, opts)
    assert no_spans["spans"] == []
    far = {"userInput": {"text": "hi"}, "labels": [{"slot": "p", "valueSpan": {"endIndex": 9}}]}
    assert rejects("span_extraction", far, {"text": "userInput.text", "spans": "labels"},
                   opts) == "span_out_of_bounds"


def test_rag_passages_from_title_sentence_pairs():
    row = {"question": "q?", "answer": "yes",
           "context": [["A", [" one.", " two."]], ["B", ["three."]]],
           "supporting_facts": [["A", 1]]}
    rec = run("rag", row, {"question": "question", "answer": "answer", "passages": "context",
                           "supporting": "supporting_facts"})
    assert rec["passages"] == [{"title": "A", "text": " one. two."},
                               {"title": "B", "text": "three."}]
    assert rec["supporting"] == [{"title": "A", "sentence": 1}]


def test_media_paths_resolve_and_missing_files_reject(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "7.png").write_bytes(b"\x89PNG")
    fm = {"question": "col_0", "answer": "col_1"}
    opts = {"image_template": "images/{col_2}.png"}
    rec = run("vision_language", {"col_0": "shape?", "col_1": "circle", "col_2": 7}, fm, opts,
              tmp_path)
    assert rec["images"] == [str((tmp_path / "images" / "7.png").resolve())]
    assert rec["messages"][0]["content"] == "<image>shape?"
    assert rejects("vision_language", {"col_0": "q", "col_1": "a", "col_2": 8}, fm, opts,
                   tmp_path) == "media_missing"
    (tmp_path / "3_theo_0.wav").write_bytes(b"RIFF")
    rec = run("audio_transcript", {"path": "3_theo_0.wav"}, {"audio": "path"},
              {"text_regex": r"^([^_]+)_", "text_map": {"3": "three"}}, tmp_path)
    assert rec == {"audio": str((tmp_path / "3_theo_0.wav").resolve()), "text": "three"}


def test_record_text_hash_and_config_id():
    rec = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert record_text("alpaca", rec) == "hi\n\nyo"
    assert record_text("token_classification", {"tokens": ["a", "b"], "tags": ["O", "O"]}) == "a b"
    assert text_hash("text", {"text": "x"}) == text_hash("classification",
                                                         {"text": "x", "label": "1"})
    # Same transcript, different recordings: different rows.
    assert text_hash("audio_transcript", {"audio": "/a.wav", "text": "zero"}) != text_hash(
        "audio_transcript", {"audio": "/b.wav", "text": "zero"})
    with pytest.raises(UnknownShapeError, match="did you mean 'alpaca'"):
        record_text("alpacca", rec)
    a = config_id("classification", {"text": "t", "label": "y"}, {"label_set": ["a"]})
    b = config_id("classification", {"label": "y", "text": "t"}, {"label_set": ["a"]})
    assert a == b and len(a) == 12
    assert a != config_id("classification", {"text": "t", "label": "z"}, None)
