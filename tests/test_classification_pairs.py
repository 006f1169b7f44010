"""Sentence-pair classification (MRPC/SNLI-style rows with ``text_pair``) sees both sentences."""

from __future__ import annotations

from brewslm_core.train import TrainConfig, get_handler
from brewslm_core.train.base_model import resolve_model_path


def _rows() -> list[dict]:
    pairs = [
        ("The cat sat on the mat.", "A cat was sitting on a mat.", "equivalent"),
        ("Shares rose 5% on Monday.", "The museum opens at nine.", "not_equivalent"),
        ("He bought a red car.", None, "not_equivalent"),  # a row without a pair in the same batch
    ]
    return [{"record": {"text": a, **({"text_pair": b} if b else {}), "label": y}} for a, b, y in pairs]


def test_a_pair_is_encoded_as_both_texts_and_a_single_text_as_itself():
    config = TrainConfig(task_profile="classification", base="auto", max_length=64)
    handler = get_handler("classification")
    rows = _rows()
    handler.setup(resolve_model_path(config.base, config.task_profile), rows, config)
    examples = handler.encode(rows)
    tok = handler.tokenizer
    first = tok.decode(examples[0].input_ids)
    assert "cat sat on the mat" in first and "cat was sitting on a mat" in first
    assert examples[0].input_ids.count(tok.sep_token_id) == 2  # [CLS] a [SEP] b [SEP]
    alone = tok.decode(examples[2].input_ids)
    assert "red car" in alone and examples[2].input_ids.count(tok.sep_token_id) == 1
    assert examples[0].target != examples[1].target


def test_a_long_pair_is_truncated_without_losing_either_side():
    config = TrainConfig(task_profile="classification", base="auto", max_length=32)
    handler = get_handler("classification")
    long_a = " ".join(["alpha"] * 60)
    rows = [{"record": {"text": long_a, "text_pair": "short second sentence", "label": "x"}},
            {"record": {"text": "other", "text_pair": "pair", "label": "y"}}]
    handler.setup(resolve_model_path(config.base, config.task_profile), rows, config)
    ids = handler.encode(rows)[0].input_ids
    assert len(ids) == 32
    assert "short second sentence" in handler.tokenizer.decode(ids)
