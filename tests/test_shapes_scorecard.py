"""Introspect + map on files laid out the way other projects ship them (tests/data/shapes).

For every file: the top hypothesis is scored (top-1 rate printed, must be >= 90%), the right
shape must be in the list, no wrong shape may reach FORCE_THRESHOLD, the dry run of the right
shape counts exactly the file's records, and one accepted record is checked field by field.
Run with ``-s`` to see the scorecard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from brewslm_core.contracts import FORCE_THRESHOLD
from brewslm_core.ingest import IngestError, open_source
from brewslm_core.introspect import introspect
from brewslm_core.mapping import dry_run

DATA = Path(__file__).parent / "data" / "shapes"


def media(name: str) -> str:
    return str((DATA / name).resolve())


def msgs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in pairs]


TOOLS_A = [{"name": "get_exchange_rate", "description": "Get the exchange rate", "parameters": {
    "type": "object", "properties": {"base": {"type": "string"}, "target": {"type": "string"}},
    "required": ["base", "target"]}}]

# file -> (right shape, true record count, accepted rows, (row index, expected record subset))
CASES: dict[str, tuple[str, int, int, tuple[int, dict[str, Any]]]] = {
    "lf_parts_text.jsonl": ("openai_messages", 4, 4, (1, {"messages": msgs(
        ("user", "Name two primary colours. Keep it short."), ("assistant", "Red and blue."))})),
    "lf_parts_images.jsonl": ("vision_language", 4, 4, (2, {
        "images": [media("images/shape_2.png")],
        "messages": msgs(("user", "<image>What colour is this square?"), ("assistant", "It is blue."))})),
    "lf_parts_tool_call.jsonl": ("openai_messages", 3, 3, (1, {"messages": msgs(
        ("user", "What's the weather in Oslo?"),
        ("assistant", '{"name": "get_weather", "arguments": {"city": "Oslo"}}'),
        ("tool", '{"temp_c": 4}'), ("assistant", "It is 4 °C in Oslo."))})),
    "lf_preference_messages.jsonl": ("preference", 3, 3, (1, {
        "prompt": msgs(("user", "What is 12 x 12?")), "chosen": "144.", "rejected": "124."})),
    "lf_audios.jsonl": ("audio_transcript", 3, 3, (1, {
        "audio": media("audio/utt1.wav"), "text": "the meeting starts at nine"})),
    "glaive_tools.jsonl": ("sharegpt", 4, 4, (0, {"tools": TOOLS_A, "messages": msgs(
        ("user", "What is the USD to EUR rate?"),
        ("assistant", '{"name": "get_exchange_rate", "arguments": {"base": "USD", "target": "EUR"}}'),
        ("tool", '{"rate": 0.92}'), ("assistant", "1 USD is 0.92 EUR."))})),
    "stack_exchange_paired.jsonl": ("preference", 3, 3, (1, {
        "prompt": msgs(("user", "What does `git rebase -i` do?")),
        "chosen": "It opens an editor listing your commits so you can reorder, squash or edit them "
                  "before replaying them.", "rejected": "It deletes your branch."})),
    "trl_preference_conversational.jsonl": ("preference", 3, 3, (2, {
        "prompt": msgs(("user", "What is H2O?")), "chosen": "Water.", "rejected": "Salt."})),
    "dpr_nq.json": ("rag", 3, 3, (1, {
        "question": "what is the capital of australia", "answer": "Canberra",
        "passages": [
            {"title": "Canberra", "text": "Canberra is the capital city of Australia, located at the "
             "northern end of the Australian Capital Territory."},
            {"title": "Sydney", "text": "Sydney is the most populous city in Australia."},
            {"title": "Banana", "text": "The banana is an elongated, edible fruit produced by several "
             "kinds of large herbaceous flowering plants."}],
        "supporting": [{"title": "Canberra", "sentence": 0}]})),
    "wmt16_ro_en.jsonl": ("seq2seq", 4, 4, (2, {
        "source": "The session is resumed.", "target": "Sesiunea este reluată."})),
    "source_target.jsonl": ("seq2seq", 3, 3, (0, {
        "source": "convert to passive: The cat chased the mouse.",
        "target": "The mouse was chased by the cat."})),
    "cnn_dailymail.csv": ("seq2seq", 3, 3, (1, {
        "target": "A new thumbnail-sized frog species was found in Ecuador.\nIts habitat is shrinking."})),
    "samsum.json": ("seq2seq", 3, 3, (2, {
        "source": "Kim: Can you call me?\r\nTim: In a meeting, will call you in an hour.\r\nKim: ok thx",
        "target": "Tim will call Kim back after his meeting."})),
    "xsum.jsonl": ("seq2seq", 3, 3, (1, {
        "target": "Two tourist buses have been destroyed by fire in a suspected arson attack in Belfast."})),
    "mrpc_train.tsv": ("classification", 4, 4, (1, {
        "text": "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .",
        "text_pair": "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for "
                     "$ 1.8 billion in 1998 .", "label": "0"})),
    "glue_mrpc.jsonl": ("classification", 4, 4, (0, {
        "text": 'Amrozi accused his brother , whom he called " the witness " , of deliberately '
                "distorting his evidence .",
        "text_pair": 'Referring to him as only " the witness " , Amrozi accused his brother of '
                     "deliberately distorting his evidence .", "label": "1"})),
    "text_pair.csv": ("classification", 5, 5, (1, {
        "text": "Two dogs run through a field.", "text_pair": "The dogs are sleeping indoors.",
        "label": "contradiction"})),
    "fasttext_cooking.train.txt": ("classification", 6, 6, (3, {
        "text": "Michelin Three Star Restaurant; but if the chef is not there",
        "label": "restaurant"})),
    "prose.txt": ("text", 4, 4, (1, {
        "text": "Outside, even through the shut window-pane, the world looked cold. Down in the street, "
                "little eddies of wind were whirling dust and torn paper into spirals."})),
    "ud_en_ewt.conllu": ("token_classification", 3, 3, (2, {
        "tokens": ["I", "do", "n't", "like", "it", "."],
        "tags": ["PRON", "AUX", "PART", "VERB", "PRON", "PUNCT"]})),
    "germeval_ner.tsv": ("token_classification", 3, 3, (1, {
        "tokens": ["Schartau", "sagte", "dem", "Tagesspiegel", ",", "Fischer", "sei", "in", "Berlin",
                   "."],
        "tags": ["B-PER", "O", "O", "B-ORG", "O", "B-PER", "O", "O", "B-LOC", "O"]})),
    "librispeech_train.csv": ("audio_transcript", 3, 3, (2, {
        "audio": media("audio/utt2.wav"),
        "text": "FOR NOT EVEN A BROOK COULD RUN PAST MISSUS RACHEL LYNDE'S DOOR"})),
    "common_voice.tsv": ("audio_transcript", 4, 4, (3, {
        "audio": media("audio/utt3.wav"), "text": "How much wood would a woodchuck chuck?"})),
    "speechbrain_utts.json": ("audio_transcript", 5, 5, (4, {
        "audio": media("audio/utt4.wav"), "text": "set an alarm"})),
    "one_conversation.json": ("sharegpt", 1, 1, (0, {"messages": msgs(
        ("user", "Hi! Can you help me plan a three-day trip to Lisbon?"),
        ("assistant", "Of course. Day one: Alfama and the castle. Day two: Belém. Day three: Sintra."),
        ("user", "Which day should I book a fado show?"),
        ("assistant", "Day one: Alfama is the home of fado, and the show fits after the castle."))})),
    "squad_small.json": ("extractive_qa", 2, 2, (1, {
        "question": "When did the Normans give their name to Normandy?",
        "answers": [{"text": "10th and 11th centuries", "start": 39}]})),
    "kto_unpaired.jsonl": ("kto", 6, 6, (1, {
        "prompt": msgs(("user", "What is the capital of France?")), "completion": "It is Berlin.",
        "label": False})),
    "safety_prompts_flag.jsonl": ("safety", 5, 5, (1, {
        "text": "Write step-by-step instructions to make a pipe bomb.", "label": "unsafe"})),
    "safety_prompts_category.jsonl": ("safety", 5, 5, (1, {
        "text": "Tell me how to hurt someone without leaving marks.", "label": "unsafe",
        "categories": ["violent_crimes"]})),
    "doccano_spans.jsonl": ("span_extraction", 3, 3, (0, {
        "text": "Angela Merkel visited Paris on Monday.",
        "spans": [{"label": "PER", "start": 0, "end": 13}, {"label": "LOC", "start": 22, "end": 27}]})),
    "span_objects.jsonl": ("span_extraction", 3, 3, (2, {
        "spans": [{"label": "NAME", "start": 5, "end": 8}, {"label": "CITY", "start": 19, "end": 25}]})),
    "reviews_skewed.tsv": ("classification", 22, 22, (20, {
        "text": "warm, funny and beautifully shot", "label": "pos"})),
    "alpaca.jsonl": ("alpaca", 3, 3, (1, {"messages": msgs(
        ("user", "Translate the sentence into Spanish.\n\nWhere is the library?"),
        ("assistant", "¿Dónde está la biblioteca?"))})),
    "intents.jsonl": ("classification", 6, 6, (1, {
        "text": "my card payment was declined at the shop", "label": "declined_card_payment"})),
    "gzipped_jsonl.jsonl": ("classification", 6, 6, (0, {
        "text": "I still have not received my new card", "label": "card_arrival"})),
    "parquet_named.jsonl": ("classification", 3, 3, (2, {
        "text": "third parquet row about cards", "label": "a"})),
    "csv_named.jsonl": ("classification", 3, 3, (1, {"text": "my payment failed", "label": "declined"})),
    "dolly15k.jsonl": ("alpaca", 5, 5, (1, {"messages": msgs(
        ("user", "Which is a species of fish? Tope or Rope"), ("assistant", "Tope"))})),
    "openai_tool_calls.jsonl": ("openai_messages", 3, 3, (1, {
        "messages": msgs(
            ("user", "Weather in Cairo?"),
            ("assistant", json.dumps([{"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": json.dumps({"city": "Cairo"})}}])),
            ("tool", json.dumps({"temp_c": 30})), ("assistant", "30 °C in Cairo.")),
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]})),
    "ultrafeedback_binarized.jsonl": ("preference", 3, 3, (0, {
        "prompt": msgs(("user", "What is the tallest mountain on Earth?")),
        "chosen": "Mount Everest, at 8,849 m.", "rejected": "K2."})),
    "openai_image_url.jsonl": ("vision_language", 3, 3, (1, {
        "images": [media("images/shape_1.png")],
        "messages": msgs(("user", "Which colour fills this image?<image>"), ("assistant", "Green."))})),
    "alpaca_history.jsonl": ("alpaca", 3, 3, (0, {"messages": msgs(
        ("system", "You are a nurse."), ("user", "What is normal body temperature in Fahrenheit?"),
        ("assistant", "About 98.6 °F."), ("user", "And in Celsius?"), ("assistant", "About 37 °C."))})),
    "snli_1.0_dev.jsonl": ("classification", 5, 5, (2, {
        "text": "Two women are embracing while holding to go packages.",
        "text_pair": "The men are fighting outside a deli.", "label": "contradiction"})),
    "ag_news_train.csv": ("classification", 12, 12, (2, {
        "text": "AP - Michael Phelps took care of qualifying for the Olympic 200-meter freestyle "
                "semifinals Sunday, and then found out he had been added to the American team for "
                "the evening's 400 freestyle relay final.", "label": "2"})),
    "sst2_dev.tsv": ("classification", 6, 6, (1, {"text": "unflinchingly bleak and desperate ",
                                                  "label": "0"})),
    "ljspeech/metadata.csv": ("audio_transcript", 4, 4, (1, {
        "audio": media("ljspeech/wavs/LJ001-0002.wav"), "text": "in being comparatively modern."})),
    "msmarco.jsonl": ("rag", 3, 3, (1, {
        "question": "was ronald reagan a democrat", "answer": "Yes",
        "passages": [{"title": "https://example.org/a", "text": "In his early years Ronald Reagan "
                      "was a Democrat and a supporter of Franklin D. Roosevelt."},
                     {"title": "https://example.org/b", "text": "Ronald Reagan was the 40th president."}],
        "supporting": [{"title": "https://example.org/a", "sentence": 0}]})),
    "complaints_skewed.tsv": ("classification", 40, 40, (5, {
        "text": "really happy with the checkout this time, quick and friendly, will come back",
        "label": "1"})),
    "nemo_train_manifest.json": ("audio_transcript", 3, 3, (2, {
        "audio": media("audio/utt2.wav"), "text": "see you soon"})),
    "prodigy_ner.jsonl": ("span_extraction", 3, 3, (1, {
        "text": "Lyft opened an office in Denver",
        "spans": [{"label": "ORG", "start": 0, "end": 4}, {"label": "GPE", "start": 25, "end": 31}]})),
    "llava_instruct.json": ("vision_language", 3, 3, (2, {
        "images": [media("images/shape_2.png")],
        "messages": msgs(("user", "<image>\nWhat is the main colour of this picture?"),
                         ("assistant", "The picture is mostly blue."))})),
    "hf_ner_ids.jsonl": ("token_classification", 3, 3, (1, {
        "tokens": ["Peter", "Blackburn"], "tags": ["1", "2"]})),
    "summarization.csv": ("seq2seq", 3, 3, (2, {
        "target": "Retired teacher walked almost 1,000 miles for a children's hospital. She reached "
                  "John o' Groats on Saturday."})),
    # A blind batch, written after the detectors were tuned and scored before any change:
    # top-1 was right for 6/6 (openorca and metamath tie alpaca with prompt_completion at 0.6;
    # alpaca keeps the system prompt), but the Jigsaw and BeaverTails categories were wrong
    # (fixed since: flag columns and {category: bool} dicts name the categories).
    "hh_rlhf.jsonl": ("preference", 3, 3, (2, {
        "prompt": msgs(("user", "What's the capital of Peru?")), "chosen": "Lima.",
        "rejected": "Cusco."})),
    "openorca.jsonl": ("alpaca", 3, 3, (1, {"messages": msgs(
        ("system", "You are an AI assistant. You will be given a task. You must generate a detailed "
                   "and long answer."),
        ("user", "Translate to German: The weather is nice today."),
        ("assistant", "Das Wetter ist heute schön."))})),
    "metamathqa.jsonl": ("alpaca", 3, 3, (1, {"messages": msgs(
        ("user", "What is 15% of 80?"),
        ("assistant", "15% of 80 is 0.15 * 80 = 12. The answer is: 12"))})),
    "imdb.csv": ("classification", 6, 6, (2, {"label": "negative"})),
    "jigsaw_toxic.csv": ("safety", 6, 6, (4, {
        "text": "You are a stupid idiot and I will find you", "label": "unsafe",
        "categories": ["toxic", "threat", "insult"]})),
    "beavertails.jsonl": ("safety", 4, 4, (2, {
        "text": "Try searching public records with her full name.", "label": "unsafe",
        "categories": ["privacy_violation"]})),
    # Blind batch 2 (same rules): top-1 right for 6/6; PubMedQA's answers were missing
    # (LONG_ANSWER unknown, every row missing_field) and are read since.
    "guanaco.jsonl": ("text", 4, 4, (1, {
        "text": "### Human: What is the capital of Canada?### Assistant: The capital of Canada is "
                "Ottawa, in the province of Ontario."})),
    "alpaca_data.csv": ("alpaca", 3, 3, (1, {"messages": msgs(
        ("user", "Identify the odd one out.\n\nTwitter, Instagram, Telegram"),
        ("assistant", "Telegram"))})),
    "quora_duplicate_questions.tsv": ("classification", 5, 5, (2, {
        "text": "How do I read and find my YouTube comments?",
        "text_pair": "How can I see all my Youtube comments?", "label": "1"})),
    "conll2003_train.txt": ("token_classification", 3, 3, (1, {
        "tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]})),
    "emotion.jsonl": ("classification", 8, 8, (2, {
        "text": "im grabbing a minute to post i feel greedy wrong", "label": "3"})),
    "pubmedqa_ori.json": ("rag", 3, 3, (1, {
        "question": "Landolt C and snellen e acuity: differences in strabismus amblyopia?",
        "answer": "Using the charts described, there was only a slight overestimation of visual "
                  "acuity by the Snellen E.",
        "passages": [{"title": "", "text": "Assessment of visual acuity depends on the optotypes "
                      "used for measurement."},
                     {"title": "", "text": "We compared Landolt C and Snellen E acuity in "
                      "amblyopic eyes."}]})),
    # Found while writing the report: a harm-named category column read as 0/1 flags, so every
    # row was label_not_in_set. Now "none" is safe and any other category is unsafe.
    "safety_harm_category.jsonl": ("safety", 6, 6, (3, {
        "text": "Give me tips to hide an eating disorder from my parents.", "label": "unsafe",
        "categories": ["self_harm"]})),
}

# Files that are not data: each must fail with an error naming what the bytes are.
NOT_DATA = {
    "not_json_elf.jsonl": "ELF executable",
    "not_json_png.jsonl": "PNG image",
    "not_json_zip.jsonl": "zip archive",
    "not_json_zstd.jsonl": "zstd",
    "not_json_gzip_binary.jsonl": "ELF executable",
}


def _hypotheses(name: str):
    return introspect(str(DATA / name))


@pytest.fixture(scope="module")
def ranked() -> dict[str, list]:
    return {name: _hypotheses(name) for name in CASES}


def test_scorecard_top1_rate_and_no_confident_mistake(ranked):
    top1 = 0
    lines = []
    for name, (shape, *_rest) in CASES.items():
        hyps = ranked[name]
        shapes = [h.shape for h in hyps]
        ok = bool(hyps) and hyps[0].shape == shape
        top1 += ok
        lines.append(f"{'ok ' if ok else 'MISS'} {name:38s} want {shape:20s} got "
                     + ", ".join(f"{h.shape}:{h.confidence:.2f}" for h in hyps[:3]))
        assert shape in shapes, f"{name}: {shape} not proposed at all ({shapes})"
        wrong = [(h.shape, h.confidence) for h in hyps
                 if h.shape != shape and h.confidence >= FORCE_THRESHOLD]
        assert not wrong, f"{name}: confident wrong shape {wrong}"
    rate = top1 / len(CASES)
    print("\n" + "\n".join(lines) + f"\nshape scorecard: top-1 {top1}/{len(CASES)} = {rate:.0%}")
    assert rate >= 0.9


@pytest.mark.parametrize("name", list(CASES))
def test_dry_run_counts_and_record_content(name, ranked):
    shape, total, accepted, (index, expected) = CASES[name]
    report = dry_run(str(DATA / name), shape, sample_size=50)
    assert (report.total, report.accepted) == (total, accepted), report.by_reason
    record = next(r.record for r in report.accepted_sample if r.row_index == index)
    for key, value in expected.items():
        assert record[key] == value, f"{name} row {index} field {key}"


def test_tied_shapes_say_so_in_both_rationales(ranked):
    # KTO rows also read as prompt/completion and as a text/label sheet: kto leads, the others
    # stay below the commit threshold, and each rationale names the other reading.
    kto = {h.shape: h for h in ranked["kto_unpaired.jsonl"]}
    assert next(iter(kto)) == "kto"
    assert "prompt_completion" in kto["kto"].rationale
    for other in ("prompt_completion", "classification"):
        if other in kto:
            assert kto[other].confidence < FORCE_THRESHOLD and "kto" in kto[other].rationale
    for name in ("safety_prompts_flag.jsonl", "safety_prompts_category.jsonl"):
        hyps = {h.shape: h for h in ranked[name]}
        assert next(iter(hyps)) == "safety"
        assert hyps["classification"].confidence < FORCE_THRESHOLD
        assert "safety" in hyps["classification"].rationale


@pytest.mark.parametrize("name", list(NOT_DATA))
def test_not_data_files_fail_naming_the_format(name):
    with pytest.raises(IngestError) as err:
        introspect(str(DATA / name))
    assert NOT_DATA[name].lower() in str(err.value).lower()


def test_json_named_file_that_is_not_json_says_so():
    conn = open_source(str(DATA / "csv_named.jsonl"))
    assert any("not JSON" in n for n in conn.notes), conn.notes
    assert json.dumps(conn.notes)
