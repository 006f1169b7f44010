"""Pieces the encoder-side handlers (classification, QA, structured extraction, safety) share.

Every one of them runs a BERT-style encoder (default all-MiniLM-L6-v2) over packed rows: the
examples of a micro-batch sit side by side, positions restart per example and a block-diagonal
mask keeps them apart, so a packed batch computes what one example per row would. Per-token
values (labels, token types) are laid out with the same groups ``lay_out`` chose.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Example, lay_out
from .lora import adapt

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

ENCODER_LORA_TARGETS = ("query", "key", "value", "dense")
HEADS_FILE = "heads.safetensors"
STATE_FILE = "handler_state.json"


# ---- model --------------------------------------------------------------------------------
def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}


def encoder_tokenizer(model_path: Path, fast_for: str | None = None) -> Any:
    """The encoder's tokenizer. ``fast_for`` names a task that reads offsets or word ids, which
    only a fast tokenizer gives: a slow one is refused with what to do."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if fast_for and not tokenizer.is_fast:
        raise ValueError(
            f"{fast_for}; the one in {model_path} is not: pick a base model that ships tokenizer.json"
        )
    return tokenizer


def or_generative(method: Callable) -> Callable:
    """For a handler with a generative option (QA, extraction): once ``setup`` has set
    ``self.generative`` (the base is a causal LM), the protocol call goes to it instead."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.generative is not None:
            return getattr(self.generative, method.__name__)(*args, **kwargs)
        return method(self, *args, **kwargs)

    return call


def head_module():  # torch is imported lazily; the class is built on first use
    import torch

    class EncoderHead(torch.nn.Module):
        """One linear head on the encoder: per example over its mean-pooled tokens
        (``pooled``), or per token."""

        def __init__(self, encoder: torch.nn.Module, hidden: int, n_out: int, pooled: bool) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(hidden, n_out)
            self.pooled = pooled

        def forward(self, batch: dict[str, Any]) -> torch.Tensor:
            hidden = encode_tokens(self.encoder, batch)
            if self.pooled:  # [examples, n_out]
                return self.head(mean_pool(hidden, batch["pool_index"], batch["n_examples"]))
            return self.head(hidden)  # [rows, length, n_out]

    return EncoderHead


def load_encoder(model_path: Path, config: TrainConfig, targets: Any = ENCODER_LORA_TARGETS):
    """The pretrained encoder in fp32, LoRA-wrapped or fully trainable as the config says."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(config.seed)  # head inits that follow are part of the run's determinism
    encoder = AutoModel.from_pretrained(model_path, attn_implementation="sdpa", dtype=torch.float32)
    return adapt(encoder, config, targets)


def encode_tokens(encoder: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Last hidden states [rows, length, hidden] of a packed batch."""
    import torch

    types = batch.get("token_type_ids")
    out = encoder(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        token_type_ids=torch.zeros_like(batch["input_ids"]) if types is None else types,
    )
    return out.last_hidden_state


def mean_pool(hidden: torch.Tensor, pool_index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over each example's own tokens (pad tokens carry index ``n`` and are dropped)."""
    import torch

    flat = hidden.flatten(0, 1)
    sums = flat.new_zeros((n + 1, flat.shape[-1])).index_add_(0, pool_index, flat)
    counts = torch.bincount(pool_index, minlength=n + 1).clamp_min(1).unsqueeze(-1)
    return (sums / counts.to(flat.dtype))[:n]


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode without gradients; the model's previous mode comes back afterwards."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# ---- packed batches -----------------------------------------------------------------------
def packed_batch(
    examples: Sequence[Example], pad_id: int, packing: bool, pack_length: int
) -> tuple[dict[str, Any], list[list[int]], list[int]]:
    """The common tensors of a packed encoder batch, the row groups, and each example's start
    offset inside its row."""
    import torch

    rows, groups = lay_out(examples, pad_id, packing, pack_length)
    seg = rows.segment
    # True = may attend. Padding forms its own block so no softmax row is empty.
    mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1)
    n = len(examples)
    offsets = [0] * n
    for group in groups:
        at = 0
        for i in group:
            offsets[i] = at
            at += examples[i].length
    batch = {
        "input_ids": rows.input_ids,
        "position_ids": rows.position_ids,
        "attention_mask": mask,
        "pool_index": torch.where(seg >= 0, seg, torch.full_like(seg, n)).flatten(),
        "n_examples": n,
        "tokens": rows.tokens,
        "real_tokens": rows.real_tokens,
    }
    return batch, groups, offsets


def place(
    values: Sequence[Sequence[int]], groups: list[list[int]], width: int, fill: int
) -> torch.Tensor:
    """Per-token values of each example laid out in the rows ``lay_out`` built."""
    import torch

    out = torch.full((len(groups), width), fill, dtype=torch.long)
    for r, group in enumerate(groups):
        at = 0
        for i in group:
            n = len(values[i])
            out[r, at : at + n] = torch.as_tensor(values[i], dtype=torch.long)
            at += n
    return out


def row_of(groups: list[list[int]], n: int) -> list[int]:
    """The row each example sits in."""
    where = [0] * n
    for r, group in enumerate(groups):
        for i in group:
            where[i] = r
    return where


# ---- saving -------------------------------------------------------------------------------
def save_encoder_model(
    encoder: torch.nn.Module,
    heads: dict[str, torch.nn.Module],
    tokenizer: Any,
    state: dict[str, Any],
    out_dir: Path,
) -> None:
    """Encoder (adapter or full weights), head weights, tokenizer and handler state."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out_dir, safe_serialization=True)
    tensors = {
        f"{name}.{key}": value.detach().contiguous().cpu()
        for name, head in heads.items()
        for key, value in head.state_dict().items()
    }
    save_file(tensors, str(out_dir / HEADS_FILE))
    tokenizer.save_pretrained(out_dir)
    (out_dir / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


# ---- BIO tags and span sets ---------------------------------------------------------------
def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(label, start, end-exclusive) entities of a BIO tag sequence.

    An ``I-x`` that does not continue an ``x`` entity starts a new one (the lenient reading
    conlleval uses), so a model that never emits ``B-`` still gets credit for whole spans.
    """
    spans: list[tuple[str, int, int]] = []
    label: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        kind, _, name = tag.partition("-")
        continues = kind == "I" and name == label
        if label is not None and not continues:
            spans.append((label, start, i))
            label = None
        if kind in ("B", "I") and name and not continues:
            label, start = name, i
    return spans


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": tp + fn}


def span_set_scores(
    gold: Iterable[Iterable[tuple[str, int, int]]], pred: Iterable[Iterable[tuple[str, int, int]]]
) -> dict[str, Any]:
    """Exact-match span-set precision/recall/F1, micro over all entities and per entity type.

    A predicted span counts only if label, start and end all match a gold span of that row.
    """
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g_row, p_row in zip(gold, pred, strict=True):
        g, p = set(g_row), set(p_row)
        for label, *_ in g & p:
            tp[label] += 1
        for label, *_ in p - g:
            fp[label] += 1
        for label, *_ in g - p:
            fn[label] += 1
    labels = sorted(set(tp) | set(fp) | set(fn))
    per_type = {label: _prf(tp[label], fp[label], fn[label]) for label in labels}
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    macro_f1 = sum(v["f1"] for v in per_type.values()) / len(per_type) if per_type else 0.0
    return {
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1": micro["f1"],
        "macro_f1": macro_f1,
        "gold_spans": micro["support"],
        "predicted_spans": sum(tp.values()) + sum(fp.values()),
        "per_type": per_type,
    }
