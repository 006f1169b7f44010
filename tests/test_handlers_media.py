"""Media task handlers on real rows: whisper tiny.en on FSDD clips, SmolLM2 + a fresh ViT on
easy_vqa and the multi-image chat demo. Runs are tiny (2 steps, batch 2, one CPU thread)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brewslm_core.mapping import commit, read_committed
from brewslm_core.train import TrainConfig, train
from brewslm_core.train.handlers import get_handler, lay_out
from brewslm_core.train.handlers.audio import AudioTranscriptHandler, normalise
from brewslm_core.train.handlers.vision import PLACEHOLDER, VisionLanguageHandler
from brewslm_core.train.vision_model import RANDOM_INIT_NOTE

DIGITS = "zero one two three four five six seven eight nine".split()
# Measured (greedy, 0.5 s padding, untouched whisper tiny.en converted from CTranslate2) on
# theo's clips 0..5 (index 0): 5 of 6 exact, "five" heard as "Bye." -> WER 1/6 = 0.17.
# On 30 clips (jackson, theo, george; digits 0..9) 22 were exact. The bound leaves a margin for
# BLAS differences; a broken feature pipeline or decoder prompt gives WER near 1.
AUDIO_CLIPS = [f"{d}_theo_0.wav" for d in range(6)]
WER_BOUND = 0.5


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # 2 threads on a busy 2-core machine spike the latency


def test_normalise_spells_digits_and_drops_punctuation():
    assert normalise("Seven.") == "seven" == normalise(" 7")
    assert normalise("42!") == "four two"
    assert normalise("It's 3 o'clock, OK?") == "its three oclock ok"
    assert normalise("  ") == ""


def test_handlers_are_registered():
    assert isinstance(get_handler("audio_transcription"), AudioTranscriptHandler)
    assert isinstance(get_handler("vision_language"), VisionLanguageHandler)


# ---- audio --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsdd_rows(tmp_path_factory, shared_data: Path) -> dict[str, dict]:
    """All 300 FSDD clips through the dir: connector and the audio_transcript mapper."""
    from brewslm_core import Project

    project = Project.create(tmp_path_factory.mktemp("fsdd") / "proj")
    source = f"dir:{shared_data / 'audio_fsdd' / 'recordings'}"
    result = commit(project, source, "audio_transcript", force=True)  # confidence 0.75
    assert result.accepted == 300
    rows = {Path(r["record"]["audio"]).name: r for r in read_committed(project)}
    assert rows["7_theo_0.wav"]["record"]["text"] == "seven"
    return rows


def _model_path(profile: str) -> Path:
    from brewslm_core.train.base_model import resolve_model_path

    return resolve_model_path("auto", profile)


@pytest.mark.slow
def test_whisper_scores_fsdd_before_training(fsdd_rows):
    _one_thread()
    handler = AudioTranscriptHandler()
    config = TrainConfig(task_profile="audio_transcription", max_length=16)
    handler.setup(_model_path("audio_transcription"), [], config)
    model = handler.build_model(config)  # LoRA starts as the identity: this is the base model
    rows = [fsdd_rows[name] for name in AUDIO_CLIPS]
    score = handler.score(model, rows)
    assert score["n"] == len(rows) and score["skipped"] == 0
    assert score["wer"] <= WER_BOUND, score["samples"]
    assert 0.0 <= score["cer"] <= 1.0 and score["exact_match"] >= 0.5
    assert 0.0 < score["eval_loss"] < 5.0
    # the examples hold the waveform only; features are computed per batch
    example = handler.encode(rows[:1])[0]
    assert example.input_ids[:2] == [50257, 50362]  # <|startoftranscript|><|notimestamps|>
    assert example.target[:1] == [-100]  # the forced prompt token carries no loss
    assert handler.tokenizer.decode(example.input_ids[2:-1]) == " zero"


def test_audio_rows_without_a_readable_file_are_skipped(tmp_path):
    handler = AudioTranscriptHandler()
    handler.setup(_model_path("audio_transcription"), [],
                  TrainConfig(task_profile="audio_transcription"))
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not a wav file")
    rows = [{"record": {"audio": str(bad), "text": "one"}},
            {"record": {"audio": str(tmp_path / "missing.wav"), "text": "two"}},
            {"record": {"audio": str(tmp_path / "x.wav"), "text": ""}}]
    assert handler.encode(rows) == [None, None, None]
    assert len(handler.skipped) == 2


@pytest.mark.slow
def test_audio_handler_trains_through_the_engine(project, fsdd_rows):
    names = ["3_jackson_1.wav", "8_theo_2.wav", "1_lucas_3.wav", "6_nicolas_4.wav"]
    config = TrainConfig(task_profile="audio_transcription", max_steps=2, batch_size=2,
                         max_length=16, lr=1e-4, threads=1)
    result = train(project, config, [fsdd_rows[n] for n in names],
                   [fsdd_rows["4_george_2.wav"]])
    assert result.status == "completed", result.error
    assert result.steps == 2 and result.final_train_loss is not None
    adapter = Path(result.adapter_dir)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "processor_config.json").is_file()  # the feature extractor travels along
    adapter_cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert set(adapter_cfg["target_modules"]) == {"q_proj", "v_proj"}
    assert {"wer", "cer", "eval_loss"} <= set(result.eval) and result.eval["n"] == 1
    trace = [json.loads(line) for line in (Path(result.run_dir) / "trace.jsonl").read_text().splitlines()]
    assert [t["step"] for t in trace if t["split"] == "train"] == [1, 2]
    assert all(t["real_tokens"] > 0 for t in trace if t["split"] == "train")
    events = project.events.list(run_id=result.run_id)
    assert list(zip(events["stage"], events["severity"], strict=True)) == [("training", "info")]
    assert events["payload"][0]["eval"]["wer"] == result.eval["wer"]


# ---- vision-language ---------------------------------------------------------------------
def _vqa_rows(shared_data: Path, n: int, start: int = 0) -> list[dict]:
    """easy_vqa questions as canonical vision_language rows (positional [q, answer, image_id])."""
    folder = shared_data / "vision_language" / "easy_vqa_test"
    triples = json.loads((folder / "questions.json").read_text())[start : start + n]
    return [{"record": {"images": [str(folder / "images" / f"{image}.png")],
                        "messages": [{"role": "user", "content": PLACEHOLDER + question},
                                     {"role": "assistant", "content": answer}]}}
            for question, answer, image in triples]


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory, shared_data: Path) -> list[dict]:
    """The multi-turn, multi-image chat demo through the json: connector and the mapper."""
    from brewslm_core import Project

    project = Project.create(tmp_path_factory.mktemp("mllm") / "proj")
    source = f"json:{shared_data / 'vision_language' / 'llamafactory_mllm_demo' / 'mllm_demo.json'}"
    commit(project, source, "vision_language", force=True)
    rows = list(read_committed(project))
    assert len(rows) == 6 and all(Path(p).is_file() for r in rows for p in r["record"]["images"])
    return rows


@pytest.fixture(scope="module")
def vl_handler() -> VisionLanguageHandler:
    handler = VisionLanguageHandler()
    handler.setup(_model_path("vision_language"), [],
                  TrainConfig(task_profile="vision_language", max_length=160))
    return handler


def test_image_embeddings_land_exactly_at_the_placeholders(vl_handler, demo_rows, shared_data):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from brewslm_core.train.vision_model import build_vision_language

    handler = vl_handler
    torch.manual_seed(0)
    # a small LM with SmolLM2's vocabulary: placement does not depend on the LM's size
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(handler.tokenizer), hidden_size=32,
                                      intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1))
    model = build_vision_language(lm, 32, handler.vision_settings).eval()
    two_images = next(r for r in demo_rows if len(r["record"]["images"]) == 2)
    rows = [_vqa_rows(shared_data, 1)[0], two_images]
    examples = handler.encode(rows)
    per = handler.image_tokens
    assert per == 16
    for row, example in zip(rows, examples, strict=True):
        slots = example.extra["slots"]
        assert len(slots) == per * len(row["record"]["images"])
        # the text before each slot block is exactly the rendered chat up to that placeholder
        rendered = handler.tokenizer.apply_chat_template(row["record"]["messages"], tokenize=False)
        parts = rendered.split(PLACEHOLDER)
        starts = slots[::per]
        for k, start in enumerate(starts):
            assert slots[k * per : (k + 1) * per] == list(range(start, start + per))
            before = [t for i, t in enumerate(example.input_ids[:start]) if i not in slots]
            assert handler.tokenizer.decode(before) == "".join(parts[: k + 1])
        text = [t for i, t in enumerate(example.input_ids) if i not in slots]
        assert handler.tokenizer.decode(text) == "".join(parts)
        assert all(example.target[i - 1] == -100 for i in slots)  # no loss on image slots

    handler.pack_length = 512  # both examples packed into one row
    try:
        batch = handler.collate(examples, packing=True)
    finally:
        handler.pack_length = 0
    assert batch["input_ids"].shape[0] == 1
    with torch.no_grad():
        embeds = model.embed(batch["input_ids"], batch["image_mask"], batch["pixel_values"])
        images = model.image_embeddings(batch["pixel_values"]).reshape(-1, 32)
        tokens = lm.get_input_embeddings()(batch["input_ids"])
    _, groups = lay_out(examples, 0, True, 512)  # the order packing put the examples in
    expected, offset = [], 0
    for i in groups[0]:
        expected += [offset + s for s in examples[i].extra["slots"]]
        offset += examples[i].length
    assert batch["image_mask"][0].nonzero().flatten().tolist() == expected
    assert torch.equal(embeds[0, expected], images)  # images in slot order, nothing else moved
    rest = ~batch["image_mask"][0]
    assert torch.equal(embeds[0, rest], tokens[0, rest])
    # the demo row shows the same file twice: same pixels, same embeddings, two slot blocks
    demo_first = groups[0].index(1) == 0
    same = images[:per], images[per : 2 * per]
    if not demo_first:
        same = images[per : 2 * per], images[2 * per :]
    assert torch.equal(*same)


def test_vl_rows_with_too_many_placeholders_are_skipped(vl_handler, shared_data):
    row = _vqa_rows(shared_data, 1)[0]
    row["record"]["messages"][0]["content"] = PLACEHOLDER * 2 + "what shape?"
    missing = {"record": {**_vqa_rows(shared_data, 1)[0]["record"], "images": []}}
    assert vl_handler.encode([row])[0] is None
    # fewer placeholders than images: the missing ones go to the start of the first user turn
    extra = _vqa_rows(shared_data, 1)[0]
    extra["record"]["messages"][0]["content"] = "what shape?"
    example = vl_handler.encode([extra, missing])
    assert len(example[0].extra["slots"]) == vl_handler.image_tokens
    assert example[1] is None


@pytest.mark.slow
def test_vl_handler_trains_through_the_engine(project, demo_rows, shared_data):
    train_rows = [demo_rows[0], *_vqa_rows(shared_data, 3)]
    eval_rows = _vqa_rows(shared_data, 2, start=100)
    config = TrainConfig(task_profile="vision_language", max_steps=2, batch_size=2,
                         max_length=160, lr=1e-3, threads=1)
    result = train(project, config, train_rows, eval_rows)
    assert result.status == "completed", result.error
    assert result.steps == 2 and result.final_train_loss is not None
    adapter = Path(result.adapter_dir)
    for name in ("adapter_model.safetensors", "projector.safetensors", "vision/config.json",
                 "vision/model.safetensors", "vision/preprocessor_config.json",
                 "vision_language.json", "tokenizer.json"):
        assert (adapter / name).is_file(), name
    plan = json.loads((Path(result.run_dir) / "plan.json").read_text())
    assert plan["handler"] == "VisionLanguageHandler"
    assert RANDOM_INIT_NOTE in plan["handler_state"]["notes"]
    assert "randomly initialised" in plan["handler_state"]["vision_encoder"]
    score = result.eval
    assert score["n"] == score["answered"] == 2
    assert 0.0 <= score["exact_match"] <= 1.0 and 0.0 <= score["token_f1"] <= 1.0
    assert score["eval_loss"] > 0 and RANDOM_INIT_NOTE in score["notes"]
    assert all(isinstance(s["generated"], str) for s in score["samples"])
    events = project.events.list(run_id=result.run_id)
    assert list(zip(events["stage"], events["severity"], strict=True)) == [("training", "info")]
    assert RANDOM_INIT_NOTE in events["payload"][0]["eval"]["notes"]
    assert RANDOM_INIT_NOTE in events["payload"][0]["notes"]  # also without eval rows
    # the trained vision encoder and projector are part of the checkpointed/saved weights
    from safetensors.torch import load_file

    assert load_file(str(adapter / "projector.safetensors"))["0.weight"].shape[0] == 576
