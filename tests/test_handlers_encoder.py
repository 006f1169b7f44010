"""Encoder-side task handlers (QA, structured extraction, safety) on real MiniLM weights and
real rows from ../shared/data, mapped by the map stage: label alignment checked by hand, packed
batches equal unpacked ones, and each handler trains through the engine."""

from __future__ import annotations

import json
from itertools import islice

import pytest

from brewslm_core.introspect.core import open_connector
from brewslm_core.mapping import map_rows, resolve
from brewslm_core.train import TrainConfig, get_handler, read_trace, train
from brewslm_core.train.base_model import resolve_model_path
from brewslm_core.train.handlers import IGNORE
from brewslm_core.train.handlers.encoder_tools import bio_spans, span_set_scores
from brewslm_core.train.handlers.generative import fields_json, is_causal_lm, parse_fields
from brewslm_core.train.handlers.qa import best_over_golds, normalize_answer, token_f1
from brewslm_core.train.handlers.structured import (
    bio_for_char_spans,
    char_spans_from_tags,
    field_match_scores,
    record_fields,
)

SQUAD = "json:qa_squad/squad_v2_dev_Normans_subset.json"
WNUT = "conll:ner/wnut17_emerging.dev.conll"
RESTAURANT = "json:ner/restaurant8k_span_train_3.json"
DAVIDSON = "csv:safety/davidson_hate_offensive_labeled_data.csv"


def mapped(shared_data, spec: str, shape: str, limit: int) -> list[dict]:
    """Rows as prepare hands them to train (``{"record": …}``), mapped by the real mapper with
    the field map introspection proposes."""
    kind, _, rel = spec.partition(":")
    conn = open_connector(f"{kind}:{shared_data / rel}")
    field_map, options = resolve(conn, shape, None, None)
    out = []
    for item in islice(map_rows(conn, shape, field_map, options), limit):
        if hasattr(item, "record"):
            out.append({"record": item.record})
    return out


def small(task_profile: str, **over) -> TrainConfig:
    base = dict(
        task_profile=task_profile,
        method="lora",
        lr=2e-3,
        batch_size=8,
        max_length=64,
        threads=1,  # two OMP threads thrash on a shared box
        seed=11,
        max_steps=5,
    )
    return TrainConfig(**{**base, **over})


def fresh(config: TrainConfig, rows: list[dict]):
    handler = get_handler(config.task_profile)
    handler.setup(resolve_model_path(config.base, config.task_profile), rows, config)
    return handler


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- label alignment, by hand ---------------------------------------------------------------
def test_char_spans_become_bio_over_word_pieces_and_back():
    cfg = small("structured_extraction")
    text = "A table for 4 people at 7pm, please"
    record = {"text": text, "spans": [{"label": "people", "start": 12, "end": 20},
                                      {"label": "time", "start": 24, "end": 27}]}
    handler = fresh(cfg, [{"record": record}])
    enc = handler.tokenizer(text, return_offsets_mapping=True)
    pieces = handler.tokenizer.convert_ids_to_tokens(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    tags = bio_for_char_spans(offsets, record["spans"])
    # hand-checked: [CLS] a table for 4 people at 7 ##pm , please [SEP]
    assert pieces == ["[CLS]", "a", "table", "for", "4", "people", "at", "7", "##pm", ",",
                      "please", "[SEP]"]
    assert tags == [None, "O", "O", "O", "B-people", "I-people", "O", "B-time", "I-time", "O",
                    "O", None]
    assert char_spans_from_tags(offsets, tags) == [("people", 12, 20), ("time", 24, 27)]
    (example,) = handler.encode([{"record": record}])
    ids = handler.label_id
    assert example.target == [IGNORE, ids["O"], ids["O"], ids["O"], ids["B-people"],
                              ids["I-people"], ids["O"], ids["B-time"], ids["I-time"], ids["O"],
                              ids["O"], IGNORE]


def test_word_tags_sit_on_the_first_piece_of_each_word():
    cfg = small("structured_extraction")
    record = {"tokens": ["Shivers", "by", "Sheeran"],
              "tags": ["B-creative-work", "O", "B-person"]}
    handler = fresh(cfg, [{"record": record}])
    (example,) = handler.encode([{"record": record}])
    pieces = handler.tokenizer.convert_ids_to_tokens(example.input_ids)
    assert pieces == ["[CLS]", "shivers", "by", "sheer", "##an", "[SEP]"]
    ids = handler.label_id
    # "##an" continues "sheer": no loss on it, so a word is scored once
    assert example.target == [IGNORE, ids["B-creative-work"], ids["O"], ids["B-person"], IGNORE,
                              IGNORE]
    assert handler.labels[0] == "O" and "B-person" in handler.labels


def test_bio_spans_and_span_set_scores_by_hand():
    tags = ["B-person", "I-person", "O", "I-location", "B-location", "B-person", "I-location"]
    assert bio_spans(tags) == [("person", 0, 2), ("location", 3, 4), ("location", 4, 5),
                               ("person", 5, 6), ("location", 6, 7)]
    gold = [[("person", 0, 2), ("location", 3, 4)], [("time", 1, 3)]]
    pred = [[("person", 0, 2), ("location", 3, 5)], []]
    s = span_set_scores(gold, pred)
    assert s["precision"] == pytest.approx(1 / 2) and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(0.4)
    assert s["per_type"]["person"]["f1"] == 1.0 and s["per_type"]["time"]["recall"] == 0.0
    assert s["gold_spans"] == 3 and s["predicted_spans"] == 2


def test_squad_answer_normalisation_and_token_f1():
    assert normalize_answer("The  Normans!") == "normans"
    assert token_f1("in the 10th century", "10th century") == pytest.approx(0.8)
    assert best_over_golds("Rollo", ["Rollo", "the Viking Rollo"]) == (1.0, 1.0)
    assert best_over_golds("", []) == (1.0, 1.0)  # no-answer predicted for an unanswerable one
    assert best_over_golds("France", []) == (0.0, 0.0)


def test_fields_of_records_round_trip_through_json():
    slot = {"text": "A table for 4 people at 7pm, please",
            "spans": [{"label": "people", "start": 12, "end": 20},
                      {"label": "time", "start": 24, "end": 27}]}
    words = {"tokens": ["Ed", "Sheeran", "played", "in", "Paris", "and", "Rome"],
             "tags": ["B-person", "I-person", "O", "O", "B-location", "O", "B-location"]}
    assert record_fields(slot)[1] == {"people": ["4 people"], "time": ["7pm"]}
    text, fields = record_fields(words)
    assert text == "Ed Sheeran played in Paris and Rome"
    assert fields == {"location": ["Paris", "Rome"], "person": ["Ed Sheeran"]}
    assert json.loads(fields_json(fields)) == {"location": ["Paris", "Rome"],
                                               "person": "Ed Sheeran"}
    # what a model writes: chatter around the object, values in any order
    said = 'Sure: {"person": "Ed Sheeran", "location": ["Rome", "Paris"]} done'
    assert parse_fields(said) == fields
    assert parse_fields("no json here") is None and parse_fields('{"a": ') is None
    scores = field_match_scores([fields, {"time": ["7pm"]}], [fields, {"time": ["8pm"]}])
    assert scores["exact_match"] == 0.5
    assert scores["per_field"]["time"] == {"exact_match": 0.0, "rows": 1}
    assert scores["per_field"]["person"] == {"exact_match": 1.0, "rows": 1}


def test_generative_option_follows_the_base_model_kind():
    assert not is_causal_lm(resolve_model_path("auto", "qa"))
    assert is_causal_lm(resolve_model_path("smollm2", "qa"))


def test_qa_windows_keep_the_answer_and_stride_long_contexts(shared_data):
    rows = mapped(shared_data, SQUAD, "extractive_qa", 60)
    cfg = small("qa", max_length=64)
    handler = fresh(cfg, rows)
    windows = handler.windows(rows)
    per_row = {}
    for w in windows:
        per_row.setdefault(w.extra["row"], []).append(w)
    assert max(len(v) for v in per_row.values()) > 2  # 64-token windows: contexts are strided
    examples = handler.encode(rows)
    assert len(examples) == len(rows)
    answerable = 0
    for row, example in zip(rows, examples, strict=True):
        record = row["record"]
        assert example is not None and example.length <= 64
        start, end = example.target
        if not record["answers"]:
            assert (start, end) == (0, 0)  # [CLS] = no answer
            continue
        answerable += 1
        offsets = example.extra["offsets"]
        text = record["context"][offsets[start][0]:offsets[end][1]]
        assert normalize_answer(text) == normalize_answer(record["answers"][0]["text"])
    assert answerable >= 20


# ---- packing ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("profile,spec,shape", [
    ("qa", SQUAD, "extractive_qa"),
    ("structured_extraction", WNUT, "token_classification"),
    ("structured_extraction", RESTAURANT, "span_extraction"),
    ("safety", DAVIDSON, "safety"),
])
def test_packed_batch_gives_the_same_loss_as_one_example_per_row(shared_data, profile, spec,
                                                                 shape):
    import torch

    rows = mapped(shared_data, spec, shape, 120)
    if profile == "safety":
        rows = [r for r in rows if r["record"]["label"] == "safe"][:4] + \
               [r for r in rows if r["record"]["label"] == "unsafe"][:4]
    cfg = small(profile, pack_length=128)
    handler = fresh(cfg, rows)
    model = handler.build_model(cfg).eval()
    examples = [e for e in handler.encode(rows[:8]) if e is not None]
    packed, single = handler.collate(examples, True), handler.collate(examples, False)
    assert packed["input_ids"].shape[0] < single["input_ids"].shape[0]  # rows were shared
    with torch.no_grad():
        loss_packed, n_packed = handler.loss(model, packed)
        loss_single, n_single = handler.loss(model, single)
    assert n_packed == n_single > 0
    assert float(loss_packed) == pytest.approx(float(loss_single), rel=1e-4)


# ---- training through the engine ----------------------------------------------------------
def check_run(project, result, handler_name: str) -> dict:
    assert result.status == "completed", result.error
    run = project.run_dir(result.run_id)
    steps = read_trace(run / "trace.jsonl", "train")
    assert [s["step"] for s in steps] == list(range(1, result.steps + 1))
    assert all(s["loss"] == s["loss"] and s["loss"] < float("inf") for s in steps)  # finite
    adapter = run / "adapter"
    for name in ("adapter_model.safetensors", "heads.safetensors", "tokenizer.json",
                 "handler_state.json"):
        assert (adapter / name).is_file(), name
    plan = json.loads((run / "plan.json").read_text())
    assert plan["handler"] == handler_name
    assert json.loads((adapter / "handler_state.json").read_text()) == plan["handler_state"]
    return plan


def in_unit(value) -> bool:
    return value is not None and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_qa_trains_and_scores_exact_match_and_f1(project, shared_data):
    rows = mapped(shared_data, SQUAD, "extractive_qa", 208)
    rows.sort(key=lambda r: len(r["record"]["context"]))  # short contexts keep the test cheap
    train_rows = rows[:16]
    # eval on seen rows (what a few steps can change) and on held-out ones
    eval_rows = train_rows[:6] + rows[16:22]
    cfg = small("qa", max_length=128, epochs=3, max_steps=6, lr=3e-3)
    before = fresh(cfg, train_rows)
    loss_before = before.score(before.build_model(cfg), eval_rows)["eval_loss"]

    result = train(project, cfg, train_rows, eval_rows)
    plan = check_run(project, result, "QAHandler")
    assert plan["handler_state"]["head"] == "start_end"
    scores = result.eval
    assert scores["eval_loss"] < loss_before
    assert scores["n"] == len(eval_rows)
    assert scores["has_answer_n"] + scores["no_answer_n"] == len(eval_rows)
    assert scores["has_answer_n"] > 0 and scores["no_answer_n"] > 0
    for key in ("exact_match", "f1", "has_answer_exact_match", "has_answer_f1",
                "no_answer_accuracy", "predicted_no_answer_rate"):
        assert in_unit(scores[key]), key
    assert scores["f1"] >= scores["exact_match"]


@pytest.mark.slow
def test_structured_extraction_trains_on_wnut_and_restaurant8k(project, shared_data):
    wnut = [r for r in mapped(shared_data, WNUT, "token_classification", 400)
            if any(t != "O" for t in r["record"]["tags"])]
    slots = [r for r in mapped(shared_data, RESTAURANT, "span_extraction", 200)
             if r["record"]["spans"]]
    train_rows = wnut[:16] + slots[:16]
    eval_rows = wnut[16:24] + slots[16:24]
    cfg = small("structured_extraction", epochs=3, max_steps=6)
    before = fresh(cfg, train_rows)
    loss_before = before.score(before.build_model(cfg), eval_rows)["eval_loss"]

    result = train(project, cfg, train_rows, eval_rows)
    plan = check_run(project, result, "StructuredExtractionHandler")
    labels = plan["handler_state"]["labels"]
    assert labels[0] == "O" and "B-people" in labels and "B-person" in labels
    scores = result.eval
    assert scores["eval_loss"] < loss_before
    assert scores["scoring_mode"] == "span_set"
    for key in ("precision", "recall", "f1", "macro_f1"):
        assert in_unit(scores[key]), key
    assert scores["gold_spans"] == sum(
        len(bio_spans(r["record"]["tags"])) for r in eval_rows if "tags" in r["record"]
    ) + sum(len(r["record"]["spans"]) for r in eval_rows if "spans" in r["record"])
    assert all(in_unit(v["f1"]) for v in scores["per_type"].values())
    field = scores["field_match"]  # slot filling on the restaurant8k rows
    assert in_unit(field["exact_match"])
    assert set(field["per_field"]) >= {s["label"] for r in slots[16:24] for s in r["record"]["spans"]}


@pytest.mark.slow
def test_safety_trains_verdict_and_category_heads_on_davidson(project, shared_data):
    rows = mapped(shared_data, DAVIDSON, "safety", 400)
    safe = [r for r in rows if r["record"]["label"] == "safe"]
    unsafe = [r for r in rows if r["record"]["label"] == "unsafe"]
    train_rows = [r for pair in zip(safe[:16], unsafe[:16], strict=True) for r in pair]
    eval_rows = safe[16:24] + unsafe[16:24]
    cfg = small("safety", epochs=2, max_steps=6)
    before = fresh(cfg, train_rows)
    loss_before = before.score(before.build_model(cfg), eval_rows)["eval_loss"]

    result = train(project, cfg, train_rows, eval_rows)
    plan = check_run(project, result, "SafetyHandler")
    state = plan["handler_state"]
    assert state["labels"] == ["safe", "unsafe"]
    # the mapper names davidson's unsafe classes from the vote columns
    assert set(state["categories"]) <= {"hate_speech", "offensive_language"}
    assert "offensive_language" in state["categories"]
    scores = result.eval
    assert scores["eval_loss"] < loss_before
    for key in ("accuracy", "macro_f1", "unsafe_recall", "unsafe_precision"):
        assert in_unit(scores[key]), key
    assert set(scores["per_class"]) == {"safe", "unsafe"}
    assert scores["per_class"]["unsafe"]["support"] == 8
    assert set(scores["per_category_f1"]) == set(state["categories"])
    assert all(in_unit(v) for v in scores["per_category_f1"].values())


# ---- bad input: clear errors ----------------------------------------------------------------
def test_setup_refuses_rows_it_cannot_learn_from(shared_data):
    only_o = [{"record": {"tokens": ["hello", "there"], "tags": ["O", "O"]}}]
    with pytest.raises(ValueError, match="no entity"):
        fresh(small("structured_extraction"), only_o)
    one_side = [{"record": {"text": "fine", "label": "safe", "categories": []}}]
    with pytest.raises(ValueError, match="both 'safe' and 'unsafe'"):
        fresh(small("safety"), one_side)
    with pytest.raises(ValueError, match="at least 32"):
        fresh(small("qa", max_length=16), [])


def test_rows_outside_the_label_set_are_skipped_not_guessed(shared_data):
    rows = [{"record": {"text": "ok", "label": "safe", "categories": []}},
            {"record": {"text": "bad", "label": "unsafe", "categories": ["hate_speech"]}}]
    handler = fresh(small("safety"), rows)
    odd = {"record": {"text": "?", "label": "maybe", "categories": []}}
    new_cat = {"record": {"text": "x", "label": "unsafe", "categories": ["spam"]}}
    encoded = handler.encode([odd, new_cat])
    assert encoded[0] is None
    assert encoded[1].extra == {"categories": [0.0], "unknown_categories": 1}


# ---- the generative option (a causal LM base) ----------------------------------------------
def test_generative_qa_supervises_the_answer_or_unanswerable(shared_data):
    rows = mapped(shared_data, SQUAD, "extractive_qa", 20)
    cfg = small("qa", base="smollm2", max_length=512)
    handler = fresh(cfg, rows)
    assert handler.state()["mode"] == "generative"
    tok = handler.generative.sft.tokenizer
    examples = handler.encode(rows)
    kinds = set()
    for row, example in zip(rows, examples, strict=True):
        if example is None:  # the context did not fit max_length: nothing left to supervise
            continue
        supervised = tok.decode([t for t in example.target if t != IGNORE]).strip()
        answers = row["record"]["answers"]
        expected = answers[0]["text"] if answers else "unanswerable"
        assert supervised.startswith(expected), (supervised, expected)
        kinds.add(bool(answers))
    assert kinds == {True, False}


@pytest.mark.slow
def test_field_match_option_trains_smollm2_to_write_json_fields(project, shared_data):
    slots = [r for r in mapped(shared_data, RESTAURANT, "span_extraction", 100)
             if r["record"]["spans"]]
    cfg = small("structured_extraction", base="smollm2", max_length=128, batch_size=4,
                max_steps=2, lr=1e-3)
    result = train(project, cfg, slots[:8], slots[8:10])
    assert result.status == "completed", result.error
    adapter = project.run_dir(result.run_id) / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    plan = json.loads((project.run_dir(result.run_id) / "plan.json").read_text())
    assert plan["handler_state"]["mode"] == "field_match"
    assert set(plan["handler_state"]["fields"]) >= {"people", "time"}
    scores = result.eval
    assert scores["scoring_mode"] == "field_match" and scores["n"] == 2
    assert in_unit(scores["invalid_json_rate"]) and in_unit(scores["exact_match"])
    gold_fields = {s["label"] for r in slots[8:10] for s in r["record"]["spans"]}
    assert gold_fields <= set(scores["per_field"])
    assert all(in_unit(v["exact_match"]) for v in scores["per_field"].values())
