"""load_run + predict for every task handler, on tiny real runs (2-4 steps) through the engine.

The check that the weights came back is exact: the reloaded model scores the eval rows with the
same loss the trained model reported at the end of training (``result.eval``); a missing
adapter, a fresh head or a wrong label order would each change it. Then ``predict`` gives the
task's natural output for new inputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_handlers_encoder import DAVIDSON, RESTAURANT, SQUAD, WNUT, mapped
from test_handlers_generative import dpo_rows, hotpot_rows
from test_handlers_media import _vqa_rows
from test_train_rows import alpaca_rows, banking_rows

from brewslm_core.predict import PredictInputError, RunNotLoadable, load_run, merged_causal_lm, predict
from brewslm_core.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(task_profile: str, **over) -> TrainConfig:
    base = dict(task_profile=task_profile, method="lora", lr=2e-3, batch_size=4, max_length=64,
                threads=1, seed=5, max_steps=2, lora_r=4)
    return TrainConfig(**{**base, **over})


def trained(project, config: TrainConfig, train_rows: list[dict], eval_rows: list[dict]):
    result = train(project, config, train_rows, eval_rows)
    assert result.status == "completed", result.error
    return result


def same_loss(loaded, eval_rows: list[dict], result) -> dict:
    """The reloaded model's score on the eval rows; its loss equals the trained model's."""
    scores = loaded.handler.score(loaded.model, eval_rows)
    assert scores["eval_loss"] == pytest.approx(result.eval["eval_loss"], rel=1e-4, abs=1e-5)
    return scores


# ---- encoders -----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lora", "full"])
def test_classification_reloads_and_predicts_labels_with_scores(project, shared_data, method):
    rows, eval_rows = banking_rows(shared_data, 32), banking_rows(shared_data, 12, split="test")
    result = trained(project, tiny("classification", method=method, max_steps=4, batch_size=8),
                     rows, eval_rows)
    loaded = load_run(project, result.run_id)
    assert loaded.task_profile == "classification" and not loaded.model.training
    assert loaded.weights_dir == Path(result.adapter_dir)
    scores = same_loss(loaded, eval_rows, result)
    assert scores["accuracy"] == result.eval["accuracy"]
    labels = loaded.handler.labels
    # per-class metrics and the confusion matrix come with the score
    assert set(scores["per_class"]) == set(labels)
    matrix = scores["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == len(eval_rows)
    assert sum(matrix[i][i] for i in range(len(labels))) / len(eval_rows) == scores["accuracy"]

    out = predict(project, result.run_id, ["I still have not received my new card", "card not working"])
    assert len(out) == 2
    for item in out:
        assert item["label"] in labels and set(item["scores"]) == set(labels)
        assert math.isclose(sum(item["scores"].values()), 1.0, rel_tol=1e-5)
        assert item["score"] == max(item["scores"].values())
    # a prediction agrees with the eval-time argmax on the same text
    texts = [r["record"]["text"] for r in eval_rows]
    by_predict = [p["label"] for p in predict(project, result.run_id, texts)]
    per = loaded.handler.score(loaded.model, eval_rows, per_example=True)["per_example"]
    assert by_predict == [p["prediction"] for p in per]


def test_safety_reloads_and_predicts_verdict_and_categories(project, shared_data):
    rows = mapped(shared_data, DAVIDSON, "safety", 300)
    safe = [r for r in rows if r["record"]["label"] == "safe"]
    unsafe = [r for r in rows if r["record"]["label"] == "unsafe"]
    train_rows = [r for pair in zip(safe[:8], unsafe[:8], strict=True) for r in pair]
    eval_rows = safe[8:12] + unsafe[8:12]
    result = trained(project, tiny("safety"), train_rows, eval_rows)
    loaded = load_run(project, result.run_id)
    scores = same_loss(loaded, eval_rows, result)
    assert next(iter(scores)) == "unsafe_recall"  # the number a safety gate reads comes first
    [out] = predict(project, result.run_id, ["have a lovely day"])
    assert out["label"] in ("safe", "unsafe") and 0.0 <= out["unsafe_score"] <= 1.0
    assert set(out["category_scores"]) == set(loaded.handler.categories)
    assert set(out["categories"]) <= set(loaded.handler.categories)


def test_qa_reloads_and_predicts_answer_spans_from_the_context(project, shared_data):
    rows = mapped(shared_data, SQUAD, "extractive_qa", 120)
    rows.sort(key=lambda r: len(r["record"]["context"]))
    result = trained(project, tiny("qa", max_length=128), rows[:8], rows[8:12])
    loaded = load_run(project, result.run_id)
    same_loss(loaded, rows[8:12], result)
    context = rows[20]["record"]["context"]
    out = predict(project, result.run_id, [{"question": rows[20]["record"]["question"], "context": context}])
    [item] = out
    if item["answer"]:  # the evidence is the span's place in the context
        assert context[item["start"] : item["end"]] == item["answer"]
    else:
        assert item["start"] is None and item["no_answer_score"] >= (item["score"] or -math.inf)
    with pytest.raises(PredictInputError, match="question"):
        predict(project, result.run_id, ["a bare question without context"])


def test_extraction_reloads_and_predicts_spans_and_fields(project, shared_data):
    wnut = [r for r in mapped(shared_data, WNUT, "token_classification", 300)
            if any(t != "O" for t in r["record"]["tags"])]
    slots = [r for r in mapped(shared_data, RESTAURANT, "span_extraction", 100) if r["record"]["spans"]]
    train_rows, eval_rows = wnut[:6] + slots[:6], wnut[6:9] + slots[6:9]
    result = trained(project, tiny("structured_extraction"), train_rows, eval_rows)
    loaded = load_run(project, result.run_id)
    scores = same_loss(loaded, eval_rows, result)
    assert set(scores["seqeval"]) >= {"precision", "recall", "f1"}  # seqeval over the BIO rows
    text = slots[10]["record"]["text"]
    words = wnut[10]["record"]["tokens"]
    by_text, by_words = predict(project, result.run_id, [text, {"tokens": words}])
    for span in by_text["spans"]:
        assert text[span["start"] : span["end"]] == span["text"]
    for span in by_words["spans"]:
        assert " ".join(words[span["start"] : span["end"]]) == span["text"]
    for item in (by_text, by_words):
        assert {s["label"] for s in item["spans"]} == set(item["fields"])


def test_generative_options_of_qa_and_extraction_reload_and_predict(project, shared_data):
    """A causal-LM base turns QA and extraction generative: the plan's mode brings it back."""
    qa_rows = mapped(shared_data, SQUAD, "extractive_qa", 120)
    qa_rows.sort(key=lambda r: len(r["record"]["context"]))
    result = trained(project, tiny("qa", base="smollm2", max_length=256, batch_size=2, lr=5e-4),
                     qa_rows[:2], qa_rows[2:3])
    loaded = load_run(project, result.run_id)
    assert loaded.is_causal_lm and loaded.handler.generative is not None
    same_loss(loaded, qa_rows[2:3], result)
    rec = qa_rows[3]["record"]
    [out] = predict(project, result.run_id, [{"question": rec["question"], "context": rec["context"]}])
    assert isinstance(out["answer"], str) and isinstance(out["generated"], str)

    slots = [r for r in mapped(shared_data, RESTAURANT, "span_extraction", 100) if r["record"]["spans"]]
    result = trained(project, tiny("structured_extraction", base="smollm2", max_length=128, batch_size=2,
                                   lr=1e-3), slots[:4], slots[4:5])
    loaded = load_run(project, result.run_id)
    assert loaded.handler.scoring_mode == "field_match" and loaded.handler.labels
    same_loss(loaded, slots[4:5], result)
    [out] = predict(project, result.run_id, [slots[6]["record"]["text"]])
    assert isinstance(out["valid_json"], bool) and isinstance(out["generated"], str)
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in out["fields"].values())
    if not out["valid_json"]:
        assert out["fields"] == {}


# ---- causal LMs ---------------------------------------------------------------------------
def test_sft_reloads_predicts_text_and_merges_the_adapter(project, shared_data):
    import torch

    rows = alpaca_rows(shared_data, 6)
    result = trained(project, tiny("seq2seq", lr=5e-4, batch_size=2), rows[:4], rows[4:])
    assert {"bleu", "chrf", "rougeL"} <= set(result.eval)  # bleu_rouge, from generated answers
    loaded = load_run(project, result.run_id)
    assert loaded.is_causal_lm
    same_loss(loaded, rows[4:], result)
    [out] = predict(project, result.run_id, ["Name a primary colour."])
    assert isinstance(out["text"], str) and out["text"]
    merged, tokenizer = merged_causal_lm(loaded)
    assert type(merged).__name__ == "LlamaForCausalLM"  # plain transformers, no peft wrapper
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        gap = (merged(**ids).logits - loaded.model(**ids).logits).abs().max()
    assert float(gap) < 1e-3
    assert any(hasattr(m, "lora_A") for m in loaded.model.modules())  # the loaded run is untouched


def test_dpo_reloads_and_predicts_text_with_the_preference(project, shared_data):
    rows = dpo_rows(shared_data, 6)
    result = trained(project, tiny("alignment", max_length=96, batch_size=2, lr=1e-3), rows[:4], rows[4:])
    loaded = load_run(project, result.run_id)
    same_loss(loaded, rows[4:], result)
    rec = rows[4]["record"]
    [out] = predict(project, result.run_id, [rec])
    assert isinstance(out["text"], str)
    assert out["preferred"] in ("chosen", "rejected")
    per = loaded.handler.score(loaded.model, rows[4:5], per_example=True)["per_example"]
    assert out["reward_margin"] == pytest.approx(per[0]["reward_margin"], abs=1e-5)


def test_rag_reloads_and_answers_with_evidence(project, shared_data):
    rows = hotpot_rows(shared_data, 5)
    result = trained(project, tiny("rag", max_length=128, batch_size=2, lr=5e-4), rows[:3], rows[3:])
    assert result.eval["faithfulness_lexical"] == result.eval["answer_tokens_in_passages"]
    loaded = load_run(project, result.run_id)
    same_loss(loaded, rows[3:], result)
    rec = rows[3]["record"]
    [out] = predict(project, result.run_id, [{"question": rec["question"], "passages": rec["passages"]}])
    assert isinstance(out["answer"], str)
    assert len(out["evidence"]) == loaded.handler.top_k
    assert all(e["text"] and -1.0 <= e["score"] <= 1.0 for e in out["evidence"])


# ---- media --------------------------------------------------------------------------------
def test_audio_reloads_and_transcribes(project, shared_data):
    clips = shared_data / "audio_fsdd" / "recordings"
    rows = [{"record": {"audio": str(clips / f"{d}_theo_1.wav"), "text": w}}
            for d, w in [(3, "three"), (8, "eight"), (1, "one")]]
    config = TrainConfig(task_profile="audio_transcription", max_steps=2, batch_size=2, max_length=16,
                         lr=1e-4, threads=1)
    result = trained(project, config, rows[:2], rows[2:])
    loaded = load_run(project, result.run_id)
    same_loss(loaded, rows[2:], result)
    out = predict(project, result.run_id, [str(clips / "7_theo_0.wav"), str(clips / "missing.wav")])
    assert isinstance(out[0]["transcript"], str) and out[0]["transcript"]
    assert out[1]["transcript"] is None and "missing" in out[1]["error"]


def test_vision_language_reloads_and_answers(project, shared_data):
    train_rows, eval_rows = _vqa_rows(shared_data, 3), _vqa_rows(shared_data, 2, start=100)
    config = TrainConfig(task_profile="vision_language", max_steps=2, batch_size=2, max_length=160,
                         lr=1e-3, threads=1)
    result = trained(project, config, train_rows, eval_rows)
    loaded = load_run(project, result.run_id)
    same_loss(loaded, eval_rows, result)  # ViT + projector + LM adapter all came back
    record = dict(eval_rows[0]["record"])
    [out] = predict(project, result.run_id, [record])
    assert isinstance(out["text"], str)


# ---- bad input ----------------------------------------------------------------------------
def test_unknown_or_unfinished_runs_say_what_to_do(project, shared_data):
    with pytest.raises(RunNotLoadable, match="no plan.json"):
        load_run(project, "exp-00000000")
    run = project.run_dir("exp-unfinished")
    run.mkdir(parents=True)
    (run / "plan.json").write_text(json.dumps({"task_profile": "classification", "config": {}}))
    with pytest.raises(RunNotLoadable, match="did not complete"):
        load_run(project, "exp-unfinished")


def test_qlora_run_reloads_on_its_4bit_base_and_merges_into_full_precision(project, shared_data):
    import torch

    rows = alpaca_rows(shared_data, 6)
    result = trained(project, tiny("seq2seq", method="qlora", lr=5e-4, batch_size=2), rows[:4], rows[4:])
    loaded = load_run(project, result.run_id)
    assert any(getattr(p, "quant_state", None) is not None for p in loaded.model.parameters())  # 4-bit
    same_loss(loaded, rows[4:], result)
    merged, tokenizer = merged_causal_lm(loaded)
    assert not getattr(merged, "is_loaded_in_4bit", False)
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    ids = tokenizer("Write one word about the sea:", return_tensors="pt")
    # an independent loader: peft's own PeftModel over the full-precision base
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(loaded.base_model_path, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, loaded.weights_dir).eval()
    with torch.no_grad():
        a, b = merged(**ids).logits, reference(**ids).logits
        four_bit = loaded.model(**ids).logits
    assert float((a - b).abs().max()) < 1e-3
    # against the 4-bit model it trained on: close, not equal (measured correlation 0.92)
    assert float(torch.corrcoef(torch.stack([a.flatten(), four_bit.flatten()]))[0, 1]) > 0.85
