"""Real weights: MiniLM embeds offline; SmolLM2 converts once from GGUF and matches it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from brewslm_core.models import ModelNotAvailableError, load_model, load_tokenizer, resolve_base
from brewslm_core.models.build import read_marker

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _two_threads():
    import torch

    torch.set_num_threads(2)


def _banking_texts(shared_data, category: str, n: int) -> list[str]:
    with open(shared_data / "banking77" / "test.csv", newline="", encoding="utf-8") as f:
        rows = [r["text"] for r in csv.DictReader(f) if r["category"] == category]
    return rows[:n]


def test_minilm_embeds_offline_and_groups_intents(shared_data):
    import torch

    ref = resolve_base("auto", "classification")
    tokenizer = load_tokenizer(ref)
    model = load_model(ref, task="embedding").eval()
    arrival = _banking_texts(shared_data, "card_arrival", 6)
    rates = _banking_texts(shared_data, "exchange_rate", 6)
    batch = tokenizer(arrival + rates, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb.shape == (12, 384)
    sim = emb @ emb.T
    same = torch.cat([sim[:6, :6].flatten(), sim[6:, 6:].flatten()])
    same = same[same < 0.9999]  # drop self-similarity
    across = sim[:6, 6:].flatten()
    # pretrained sentence embeddings: same-intent pairs sit clearly closer than cross-intent
    assert same.mean() - across.mean() > 0.15
    # and every sentence's nearest neighbour shares its intent
    nearest = (sim - 2 * torch.eye(12)).argmax(1)
    assert ((nearest < 6) == (torch.arange(12) < 6)).all()


def test_minilm_classification_head_takes_labels():
    ref = resolve_base("minilm")
    model = load_model(ref, task="classification", num_labels=3)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 3


def test_remote_code_and_pickle_weights_are_refused():
    ref = resolve_base("minilm")
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_model(ref, task="embedding", trust_remote_code=True)
    with pytest.raises(ValueError, match="safetensors"):
        load_model(ref, task="embedding", use_safetensors=False)


def test_missing_local_folder_is_a_clear_error(tmp_path):
    ref = resolve_base("minilm")
    gone = type(ref)(**{**ref.to_dict(), "path": str(tmp_path / "gone")})
    with pytest.raises(ModelNotAvailableError, match="missing"):
        load_tokenizer(gone)


@pytest.fixture(scope="module")
def smollm2():
    """The converted SmolLM2 (converted into the user cache once per machine)."""
    ref = resolve_base("auto", "seq2seq")
    return ref, load_tokenizer(ref), load_model(ref, task="seq2seq").eval()


def test_smollm2_converted_logits_match_the_gguf(smollm2):
    from brewslm_core.models.smollm2 import load_gguf, next_token_logits

    ref, tokenizer, model = smollm2
    marker = read_marker(Path(ref.path))
    assert marker["logits_max_abs_diff"] <= 1e-4
    gguf_tokenizer, gguf_model = load_gguf()
    for prompt in ("The capital of France is", "def fibonacci(n):"):
        assert tokenizer(prompt)["input_ids"] == gguf_tokenizer(prompt)["input_ids"]
        a = next_token_logits(model, tokenizer, prompt)
        b = next_token_logits(gguf_model, gguf_tokenizer, prompt)
        assert float((a - b).abs().max()) <= 1e-4
        assert int(a.argmax()) == int(b.argmax())


def test_smollm2_chats_and_keeps_its_special_tokens(smollm2):
    import torch

    _, tokenizer, model = smollm2
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.model_max_length == model.config.max_position_embeddings == 8192
    assert model.config.eos_token_id == tokenizer.eos_token_id
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply


def test_smollm2_second_use_is_the_fast_path(smollm2):
    from brewslm_core.models import materialize

    ref, _, _ = smollm2
    folder = Path(ref.path)
    weights = folder / "model.safetensors"
    stamp = (weights.stat().st_mtime_ns, (folder / "brewslm-conversion.json").stat().st_mtime_ns)
    assert materialize(ref) == str(folder)
    load_tokenizer(ref)
    assert (weights.stat().st_mtime_ns, (folder / "brewslm-conversion.json").stat().st_mtime_ns) \
        == stamp


def test_causal_tokenizer_without_pad_gets_eos_as_pad(smollm2, tmp_path):
    import json
    import shutil

    ref, _, _ = smollm2
    folder = tmp_path / "no-pad"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(ref.path) / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["pad_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    local = resolve_base(str(folder), "seq2seq")
    assert (local.kind, local.source) == ("causal_lm", "local")
    tokenizer = load_tokenizer(local)
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
