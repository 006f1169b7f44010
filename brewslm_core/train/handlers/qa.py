"""Extractive QA with a start/end span head on an encoder (default all-MiniLM-L6-v2).

Question and context are encoded as a pair. A context longer than the window is cut into
overlapping windows (``stride`` tokens shared); training uses, per row, the first window that
holds the whole first answer, or the first window with the [CLS] position as target when the
question has no answer. Prediction looks at every window: the best-scoring span (start + end
logit, end after start, at most ``max_answer_tokens``) against the no-answer score
([CLS] start + end, the smallest over windows), as SQuAD 2.0 systems do.

Packing works: start/end logits are read per example from its own slice of the packed row, so
each example's softmax runs over its own tokens only.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Example, HandlerHooks
from .encoder_tools import (
    ENCODER_LORA_TARGETS,
    HEADS_FILE,
    device_of,
    encode_tokens,
    encoder_tokenizer,
    evaluating,
    load_encoder,
    or_generative,
    packed_batch,
    place,
    row_of,
    save_encoder_model,
    to_device,
)
from .generative import GenerativeTask, is_causal_lm
from .restore import eval_ready, load_tensors, merged, rebuild

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

NO_ANSWER = 0  # the [CLS] position: target for "the context does not answer this"


# ---- SQuAD-style answer comparison --------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the SQuAD evaluation rule)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:  # no-answer: right only when both are empty
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def best_over_golds(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) against the closest gold answer; no gold answers means "" is right."""
    golds = list(golds) or [""]
    return (
        max(exact_match(prediction, g) for g in golds),
        max(token_f1(prediction, g) for g in golds),
    )


def qa_metrics(predictions: Sequence[str], rows: Sequence[dict]) -> dict[str, Any]:
    """SQuAD 2.0 style: exact match and token F1 overall, on answerable rows, and the share of
    unanswerable rows answered with "no answer" (prediction "")."""
    per_row = []
    for row, prediction in zip(rows, predictions, strict=True):
        golds = [str(a["text"]) for a in row["record"].get("answers") or []]
        em, f1 = best_over_golds(prediction, golds)
        per_row.append((bool(golds), em, f1, prediction == ""))
    has = [r for r in per_row if r[0]]
    none = [r for r in per_row if not r[0]]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "exact_match": mean([r[1] for r in per_row]),
        "f1": mean([r[2] for r in per_row]),
        "has_answer_n": len(has),
        "has_answer_exact_match": mean([r[1] for r in has]),
        "has_answer_f1": mean([r[2] for r in has]),
        "no_answer_n": len(none),
        "no_answer_accuracy": mean([r[1] for r in none]),
        "predicted_no_answer_rate": mean([float(r[3]) for r in per_row]),
    }


NO_ANSWER_TEXT = "unanswerable"  # what the generative option writes for "no answer"


def generative_qa() -> GenerativeTask:
    def prompt(record: dict) -> str:
        return (
            "Answer the question with a short span copied from the context. If the context "
            f"does not answer it, reply {NO_ANSWER_TEXT}.\n\nContext: {record.get('context', '')}"
            f"\n\nQuestion: {record.get('question', '')}"
        )

    def target(record: dict) -> str:
        answers = record.get("answers") or []
        return str(answers[0]["text"]) if answers else NO_ANSWER_TEXT

    def said(text: str) -> str:
        return "" if normalize_answer(text) == NO_ANSWER_TEXT else text

    def metrics(generated: list[str], rows: Sequence[dict]) -> dict[str, Any]:
        return {"n": len(rows), **qa_metrics([said(g) for g in generated], rows)}

    return GenerativeTask("generative", prompt, target, metrics, max_new_tokens=32,
                          row_check=lambda g, row: qa_row_check(said(g), row))


def qa_row_check(prediction: str, row: dict) -> dict[str, Any]:
    """One row's exact match and F1 against its closest gold; ``correct`` = exact match."""
    golds = [str(a["text"]) for a in row["record"].get("answers") or []]
    em, f1 = best_over_golds(prediction, golds)
    return {"gold": golds[0] if golds else "", "prediction": prediction, "exact_match": em, "f1": f1,
            "correct": em == 1.0}


def _module():  # torch is imported lazily; the class is built on first use
    import torch

    class EncoderSpanReader(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module, hidden: int) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(hidden, 2)  # start, end

        def forward(self, batch: dict[str, Any]) -> torch.Tensor:
            """Start/end logits per example over its own tokens: [n, longest, 2], -inf past
            each example's end."""
            logits = self.head(encode_tokens(self.encoder, batch)).flatten(0, 1)
            picked = logits[batch["span_index"]]
            return picked.masked_fill(~batch["span_mask"].unsqueeze(-1), float("-inf"))

    return EncoderSpanReader


class QAHandler(HandlerHooks):
    task_profile = "qa"
    lora_targets: Any = ENCODER_LORA_TARGETS
    max_answer_tokens = 30
    n_best = 20

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.max_length = 128
        self.pack_length = 0
        self.stride = 32
        self.generative: GenerativeTask | None = None  # set when the base is a causal LM

    # ---- setup --------------------------------------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.model_path = Path(model_path)
        if is_causal_lm(self.model_path):  # the generative option: the LM writes the answer
            self.generative = generative_qa()
            self.generative.setup(self.model_path, train_rows, config)
            return
        self.tokenizer = encoder_tokenizer(
            self.model_path, fast_for="QA needs a fast tokenizer (offset mapping)"
        )
        if config.max_length < 32:
            raise ValueError("QA needs max_length of at least 32 tokens (question + context)")
        self.max_length = config.max_length
        self.pack_length = config.pack_length
        self.stride = config.max_length // 4

    @or_generative
    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        encoder = load_encoder(self.model_path, config, self.lora_targets)
        return _module()(encoder, encoder.config.hidden_size)

    # ---- data ---------------------------------------------------------------------------
    def _questions(self, rows: Sequence[dict]) -> list[str]:
        """Questions cut (at a token boundary) to half the window, so context always fits."""
        questions = [str(r["record"].get("question", "")).strip() for r in rows]
        limit = self.max_length // 2
        enc = self.tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
        for i, offsets in enumerate(enc["offset_mapping"]):
            if len(offsets) > limit:
                questions[i] = questions[i][: offsets[limit - 1][1]]
        return questions

    def windows(self, rows: Sequence[dict]) -> list[Example]:
        """Every window of every row (one batched tokenizer call). ``extra`` holds the row,
        the offsets, the context token range and whether training uses this window."""
        if not rows:
            return []
        contexts = [str(r["record"].get("context", "")) for r in rows]
        enc = self.tokenizer(
            self._questions(rows),
            contexts,
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_token_type_ids=True,
        )
        out: list[Example] = []
        chosen: set[int] = set()
        for k, row_index in enumerate(enc["overflow_to_sample_mapping"]):
            seq = enc.sequence_ids(k)
            ctx = [t for t, s in enumerate(seq) if s == 1]
            if not ctx:
                continue
            offsets = [tuple(o) for o in enc["offset_mapping"][k]]
            answers = rows[row_index]["record"].get("answers") or []
            target = [NO_ANSWER, NO_ANSWER]
            if answers:
                start = int(answers[0]["start"])
                end = start + len(str(answers[0]["text"]))
                if offsets[ctx[0]][0] <= start and end <= offsets[ctx[-1]][1]:
                    first = next(t for t in ctx if offsets[t][1] > start)
                    last = max(t for t in ctx if offsets[t][0] < end)
                    target = [first, max(first, last)]
            # training sees one window per row: the first holding the answer (or, for a
            # question with no answer, the first window)
            train = row_index not in chosen and (not answers or target[0] != NO_ANSWER)
            if train:
                chosen.add(row_index)
            extra = {
                "row": row_index,
                "offsets": offsets,
                "context_tokens": (ctx[0], ctx[-1]),
                "token_type_ids": enc["token_type_ids"][k],
                "train": train,
            }
            out.append(Example(list(enc["input_ids"][k]), target, extra))
        return out

    @or_generative
    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        """One training window per row; None for a row whose answer fits no window."""
        by_row: dict[int, Example] = {
            w.extra["row"]: w for w in self.windows(rows) if w.extra["train"]
        }
        return [by_row.get(i) for i in range(len(rows))]

    @or_generative
    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import torch

        batch, groups, offsets = packed_batch(
            examples, self.tokenizer.pad_token_id or 0, packing, self.pack_length
        )
        width = batch["input_ids"].shape[1]
        batch["token_type_ids"] = place(
            [e.extra["token_type_ids"] for e in examples], groups, width, 0
        )
        # where each example's tokens sit in the flattened [rows * width] batch
        longest = max(e.length for e in examples)
        rows = torch.tensor(row_of(groups, len(examples)))
        starts = rows * width + torch.tensor(offsets)
        steps = torch.arange(longest)
        lengths = torch.tensor([e.length for e in examples])
        batch["span_mask"] = steps.unsqueeze(0) < lengths.unsqueeze(1)
        batch["span_index"] = torch.where(
            batch["span_mask"], starts.unsqueeze(1) + steps, torch.zeros_like(steps)
        )
        batch["targets"] = torch.tensor([e.target for e in examples], dtype=torch.long)
        return batch

    # ---- training -----------------------------------------------------------------------
    @staticmethod
    def _span_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch

        ce = torch.nn.functional.cross_entropy
        start = ce(logits[..., 0].float(), targets[:, 0], reduction="sum")
        end = ce(logits[..., 1].float(), targets[:, 1], reduction="sum")
        return (start + end) / 2

    @or_generative
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        return self._span_loss(model(batch), batch["targets"]), batch["n_examples"]

    # ---- prediction ---------------------------------------------------------------------
    def _best_span(self, logits: Any, window: Example) -> tuple[float, float, tuple[int, int] | None]:
        """(best span score, no-answer score, (start_char, end_char)) for one window."""
        start, end = logits[: window.length, 0], logits[: window.length, 1]
        null = float(start[NO_ANSWER] + end[NO_ANSWER])
        lo, hi = window.extra["context_tokens"]
        k = min(self.n_best, hi - lo + 1)
        top_s = (start[lo : hi + 1].topk(k).indices + lo).tolist()
        top_e = (end[lo : hi + 1].topk(k).indices + lo).tolist()
        best, span = float("-inf"), None
        for s in top_s:
            for e in top_e:
                if e < s or e - s + 1 > self.max_answer_tokens:
                    continue
                value = float(start[s] + end[e])
                if value > best:
                    offsets = window.extra["offsets"]
                    best, span = value, (offsets[s][0], offsets[e][1])
        return best, null, span

    def predict(
        self, model: torch.nn.Module, rows: Sequence[dict], batch_size: int = 16
    ) -> tuple[list[str], float, int]:
        """Answer text per row ("" = no answer), plus the summed training-window loss and the
        number of windows it sums over."""
        found, loss_sum, counted = self.answer_spans(model, rows, batch_size)
        return [f["answer"] for f in found], loss_sum, counted

    def answer_spans(
        self, model: torch.nn.Module, rows: Sequence[dict], batch_size: int = 16
    ) -> tuple[list[dict[str, Any]], float, int]:
        """Per row {answer, start, end, score, no_answer_score} (start/end are character
        offsets in the context, None for no answer), the summed loss and its window count."""
        windows = self.windows(rows)
        best: dict[int, tuple[float, tuple[int, int] | None]] = {}
        null: dict[int, float] = {}
        loss_sum, counted = 0.0, 0
        with evaluating(model):
            for i in range(0, len(windows), batch_size):
                chunk = windows[i : i + batch_size]
                batch = to_device(self.collate(chunk, True), device_of(model))
                logits = model(batch)
                train = [j for j, w in enumerate(chunk) if w.extra["train"]]
                if train:
                    loss_sum += float(self._span_loss(logits[train], batch["targets"][train]))
                    counted += len(train)
                logits = logits.cpu()
                for j, window in enumerate(chunk):
                    row = window.extra["row"]
                    score, no_answer, span = self._best_span(logits[j], window)
                    null[row] = min(null.get(row, no_answer), no_answer)
                    if span is not None and score > best.get(row, (float("-inf"), None))[0]:
                        best[row] = (score, span)
        answers: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            score, span = best.get(i, (float("-inf"), None))
            no_answer = null.get(i, float("-inf"))
            found: dict[str, Any] = {"answer": "", "start": None, "end": None,
                                     "score": score if span else None, "no_answer_score": no_answer}
            if span is not None and no_answer <= score:
                found.update(answer=str(row["record"]["context"])[span[0] : span[1]],
                             start=span[0], end=span[1])
            answers.append(found)
        return answers, loss_sum, counted

    @or_generative
    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        if not rows:
            return {"n": 0}
        predictions, loss_sum, counted = self.predict(model, rows)
        out = {
            "n": len(rows),
            "eval_loss": loss_sum / counted if counted else None,
            **qa_metrics(predictions, rows),
        }
        if per_example:
            out["per_example"] = [{"index": i, **qa_row_check(p, r)}
                                  for i, (p, r) in enumerate(zip(predictions, rows, strict=True))]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        self.model_path = Path(base_path)
        if state.get("mode") == "generative":
            self.generative = generative_qa()
            return self.generative.restore(base_path, weights_dir, state, config)
        self.tokenizer = encoder_tokenizer(weights_dir, fast_for="QA needs a fast tokenizer")
        self.max_length = int(state.get("max_length", config.max_length))
        self.stride = int(state.get("stride", self.max_length // 4))
        self.max_answer_tokens = int(state.get("max_answer_tokens", self.max_answer_tokens))
        self.pack_length = config.pack_length
        model = rebuild(self, config, self.model_path, weights_dir, adapter_of=lambda m: m.encoder)
        model.encoder = merged(model.encoder)  # encoders predict with the adapter merged in
        load_tensors(model.head, weights_dir / HEADS_FILE, "head.")
        return eval_ready(model)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """The answer span (text + character offsets in the context, the evidence) or "" for
        no answer; the generative option gives the written answer."""
        if self.generative is not None:
            out = []
            for found in self.generative.predict_rows(model, rows):
                text = found["text"]
                out.append({"answer": "" if normalize_answer(text) == NO_ANSWER_TEXT else text,
                            "generated": text})
            return out
        found, _, _ = self.answer_spans(model, rows)
        return found

    # ---- output -------------------------------------------------------------------------
    @or_generative
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        save_encoder_model(model.encoder, {"head": model.head}, self.tokenizer, self.state(), out_dir)

    @or_generative
    def state(self) -> dict[str, Any]:
        return {
            "head": "start_end",
            "no_answer": "cls",
            "max_length": self.max_length,
            "stride": self.stride,
            "max_answer_tokens": self.max_answer_tokens,
        }
