"""Structured extraction as BIO token classification on an encoder (default all-MiniLM-L6-v2).

Two record forms train the same head:
- ``{"tokens", "tags"}`` (token_classification): the words are tokenized as pre-split words;
  the first word piece of a word carries its tag, the other pieces carry no loss;
- ``{"text", "spans"}`` (span_extraction): character spans become BIO tags over the word pieces
  through the tokenizer's offset mapping (first overlapping piece ``B-``, the rest ``I-``).
Predicted tags go back the same way, to word ranges or to character spans, and ``score()``
compares exact span sets per entity type. For character-span rows it also reports field
match: each label is a field whose value is the text of its spans (slot filling).

Packing works for a token-level head: examples share rows with restarted positions and a
block-diagonal mask, and each label sits at its own example's token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import IGNORE, Example, HandlerHooks
from .encoder_tools import (
    ENCODER_LORA_TARGETS,
    HEADS_FILE,
    bio_spans,
    device_of,
    encoder_tokenizer,
    evaluating,
    head_module,
    load_encoder,
    or_generative,
    packed_batch,
    place,
    save_encoder_model,
    span_set_scores,
    to_device,
)
from .generative import GenerativeTask, fields_json, is_causal_lm, parse_fields
from .restore import eval_ready, load_tensors, merged, rebuild

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

OUTSIDE = "O"


def is_word_record(record: dict) -> bool:
    return "tokens" in record and "tags" in record


def is_word_record_input(record: dict) -> bool:
    """A prediction input of pre-split words (no tags yet)."""
    return "tokens" in record and "tags" not in record


def spans_to_bio(spans: Sequence[tuple[str, int, int]], n: int) -> list[str]:
    """Word spans -> one BIO tag per word (the inverse of ``bio_spans``)."""
    tags = [OUTSIDE] * n
    for label, a, b in spans:
        for k in range(a, min(b, n)):
            tags[k] = ("B-" if k == a else "I-") + label
    return tags


def seqeval_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (seqeval, conlleval rules) and its per-type report."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold, pred = [list(g) for g in gold], [list(p) for p in pred]
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "per_type": {k: {m: float(v) for m, v in d.items()} for k, d in report.items()
                     if not k.endswith(" avg")},
    }


def bio_for_char_spans(
    offsets: Sequence[tuple[int, int]], spans: Sequence[dict]
) -> list[str | None]:
    """One BIO tag per word piece for character spans (None for special tokens).

    A piece belongs to a span when their character ranges overlap; the first such piece is
    ``B-``. Where spans overlap, the earlier-starting one keeps its pieces.
    """
    tags: list[str | None] = [None if s == e else OUTSIDE for s, e in offsets]
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        first = True
        for t, (s, e) in enumerate(offsets):
            if s == e or e <= span["start"] or s >= span["end"]:
                continue
            if tags[t] != OUTSIDE:
                first = False  # taken by an earlier span; the rest of this one continues
                continue
            tags[t] = ("B-" if first else "I-") + str(span["label"])
            first = False
    return tags


def char_spans_from_tags(
    offsets: Sequence[tuple[int, int]], tags: Sequence[str | None]
) -> list[tuple[str, int, int]]:
    """Predicted piece tags -> (label, start_char, end_char) spans (special tokens skipped)."""
    real = [t for t, (s, e) in enumerate(offsets) if s != e]
    spans = bio_spans([tags[t] or OUTSIDE for t in real])
    return [(label, offsets[real[a]][0], offsets[real[b - 1]][1]) for label, a, b in spans]


def gold_char_spans(record: dict) -> list[tuple[str, int, int]]:
    return [(str(s["label"]), int(s["start"]), int(s["end"])) for s in record.get("spans", [])]


def fields_of(text: str, spans: Sequence[tuple[str, int, int]]) -> dict[str, list[str]]:
    """Slot -> sorted values (span texts, whitespace-trimmed)."""
    out: dict[str, list[str]] = {}
    for label, s, e in spans:
        out.setdefault(label, []).append(text[s:e].strip())
    return {k: sorted(v) for k, v in out.items()}


def field_match_scores(
    gold: Sequence[dict[str, list[str]]], pred: Sequence[dict[str, list[str] | None]]
) -> dict[str, Any]:
    """Slot filling: per-field exact match of the value(s), over rows where gold or prediction
    has the field, and whole-row exact match."""
    hits: dict[str, list[int]] = {}
    rows_exact = 0
    for g, p in zip(gold, pred, strict=True):
        rows_exact += g == p
        for field in set(g) | set(p):
            seen = hits.setdefault(field, [0, 0])
            seen[0] += g.get(field) == p.get(field)
            seen[1] += 1
    return {
        "exact_match": rows_exact / len(gold) if gold else 0.0,
        "per_field": {f: {"exact_match": h / n, "rows": n} for f, (h, n) in sorted(hits.items())},
    }


def record_fields(record: dict) -> tuple[str, dict[str, list[str]]]:
    """The text of a record and its gold fields (entity type -> span texts)."""
    if is_word_record(record):
        words = [str(t) for t in record["tokens"]]
        fields: dict[str, list[str]] = {}
        for label, a, b in bio_spans([str(t) for t in record["tags"]]):
            fields.setdefault(label, []).append(" ".join(words[a:b]))
        return " ".join(words), {k: sorted(v) for k, v in fields.items()}
    text = str(record.get("text", ""))
    return text, fields_of(text, gold_char_spans(record))


class StructuredExtractionHandler(HandlerHooks):
    task_profile = "structured_extraction"
    lora_targets: Any = ENCODER_LORA_TARGETS
    scoring_mode = "span_set"

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.labels: list[str] = []
        self.label_id: dict[str, int] = {}
        self.max_length = 128
        self.pack_length = 0
        self.generative: GenerativeTask | None = None  # set when the base is a causal LM

    # ---- setup --------------------------------------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.model_path = Path(model_path)
        if is_causal_lm(self.model_path):
            self._setup_generative(train_rows, config)
            return
        self.tokenizer = encoder_tokenizer(
            self.model_path, fast_for="structured extraction needs a fast tokenizer (word ids, offsets)"
        )
        self.max_length = config.max_length
        self.pack_length = config.pack_length
        names: set[str] = set()
        for row in train_rows:
            record = row["record"]
            if is_word_record(record):
                names.update(str(t) for t in record["tags"])
            else:
                for span in record.get("spans", []):
                    names.update((f"B-{span['label']}", f"I-{span['label']}"))
        names.discard(OUTSIDE)
        if not names:
            raise ValueError(
                "structured extraction found no entity in the training rows (every tag is 'O' "
                "and no row has spans); add rows that mark entities"
            )
        self.labels = [OUTSIDE, *sorted(names)]
        self.label_id = {label: i for i, label in enumerate(self.labels)}

    def _setup_generative(self, train_rows: Sequence[dict], config: TrainConfig) -> None:
        """field_match: the causal LM writes a JSON object of the fields seen in training."""
        fields = sorted({f for r in train_rows for f in record_fields(r["record"])[1]})
        if not fields:
            raise ValueError(
                "structured extraction found no entity in the training rows; add rows that "
                "mark entities"
            )
        self._field_task(fields)
        self.generative.setup(self.model_path, train_rows, config)

    def _field_task(self, fields: list[str]) -> None:
        names = ", ".join(fields)

        def prompt(record: dict) -> str:
            text = record_fields(record)[0]
            return (
                f"Extract these fields from the text as a JSON object: {names}. "
                f"Leave out fields that do not occur.\n\nText: {text}"
            )

        def target(record: dict) -> str:
            return fields_json(record_fields(record)[1])

        def metrics(generated: list[str], rows: Sequence[dict]) -> dict[str, Any]:
            parsed = [parse_fields(g) for g in generated]
            gold = [record_fields(r["record"])[1] for r in rows]
            return {
                "n": len(rows),
                "scoring_mode": "field_match",
                "invalid_json_rate": sum(p is None for p in parsed) / len(rows),
                **field_match_scores(gold, [p or {} for p in parsed]),
            }

        def row_check(generated: str, row: dict) -> dict[str, Any]:
            parsed = parse_fields(generated)
            gold = record_fields(row["record"])[1]
            return {"fields": parsed, "valid_json": parsed is not None, "correct": parsed == gold}

        self.scoring_mode = "field_match"
        self.labels = fields
        self.generative = GenerativeTask("field_match", prompt, target, metrics, 64, row_check)

    @or_generative
    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        encoder = load_encoder(self.model_path, config, self.lora_targets)
        return head_module()(encoder, encoder.config.hidden_size, len(self.labels), pooled=False)

    # ---- data ---------------------------------------------------------------------------
    def _id(self, tag: str | None) -> int:
        return IGNORE if tag is None else self.label_id.get(tag, IGNORE)

    @or_generative
    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        """One example per row; ``extra`` keeps what decoding needs (word ids or offsets)."""
        out: list[Example | None] = [None] * len(rows)
        words = [i for i, r in enumerate(rows) if is_word_record(r["record"])]
        texts = [i for i, r in enumerate(rows) if not is_word_record(r["record"])]
        if words:  # one batched call for the pre-split rows
            enc = self.tokenizer(
                [[str(t) for t in rows[i]["record"]["tokens"]] for i in words],
                is_split_into_words=True,
                truncation=True,
                max_length=self.max_length,
            )
            for k, i in enumerate(words):
                tags = rows[i]["record"]["tags"]
                word_ids = enc.word_ids(k)
                target, prev = [], None
                for w in word_ids:
                    first_piece = w is not None and w != prev
                    target.append(self._id(str(tags[w])) if first_piece else IGNORE)
                    prev = w
                out[i] = self._example(enc["input_ids"][k], target, {"word_ids": word_ids})
        if texts:  # and one for the character-span rows
            enc = self.tokenizer(
                [str(rows[i]["record"].get("text", "")) for i in texts],
                truncation=True,
                max_length=self.max_length,
                return_offsets_mapping=True,
            )
            for k, i in enumerate(texts):
                offsets = [tuple(o) for o in enc["offset_mapping"][k]]
                tags = bio_for_char_spans(offsets, rows[i]["record"].get("spans", []))
                target = [self._id(t) for t in tags]
                out[i] = self._example(enc["input_ids"][k], target, {"offsets": offsets})
        return out

    @staticmethod
    def _example(ids: list[int], target: list[int], extra: dict) -> Example | None:
        if all(t == IGNORE for t in target):
            return None
        return Example(list(ids), target, extra)

    @or_generative
    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        batch, groups, offsets = packed_batch(
            examples, self.tokenizer.pad_token_id or 0, packing, self.pack_length
        )
        width = batch["input_ids"].shape[1]
        batch["labels"] = place([e.target for e in examples], groups, width, IGNORE)
        batch["groups"], batch["offsets"] = groups, offsets
        return batch

    # ---- training -----------------------------------------------------------------------
    @or_generative
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        logits = model(batch)
        labels = batch["labels"]
        keep = labels != IGNORE
        loss = torch.nn.functional.cross_entropy(
            logits[keep].float(), labels[keep], reduction="sum"
        )
        return loss, int(keep.sum())

    def predict_tags(
        self, model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 32
    ) -> tuple[list[list[str]], float, int]:
        """Predicted tag per token of each example, plus the summed loss and its token count."""
        import torch

        preds: list[list[str]] = []
        loss_sum, count = 0.0, 0
        with evaluating(model):
            for i in range(0, len(examples), batch_size):
                chunk = examples[i : i + batch_size]
                batch = to_device(self.collate(chunk, True), device_of(model))
                logits = model(batch)
                labels = batch["labels"]
                keep = labels != IGNORE
                loss_sum += float(
                    torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum")
                )
                count += int(keep.sum())
                best = logits.argmax(-1).cpu()
                rows = {j: r for r, g in enumerate(batch["groups"]) for j in g}
                for j, ex in enumerate(chunk):
                    at = batch["offsets"][j]
                    ids = best[rows[j], at : at + ex.length].tolist()
                    preds.append([self.labels[t] for t in ids])
        return preds, loss_sum, count

    def extract(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[list[tuple[str, int, int]]]:
        """Predicted spans per row: word ranges for tokens/tags rows, character spans for text
        rows (a row that cannot be encoded gets none)."""
        return self._extract(model, rows)[0]

    def _extract(self, model: torch.nn.Module, rows: Sequence[dict]):
        encoded = self.encode(rows)
        live = [e for e in encoded if e is not None]
        tags, loss_sum, count = self.predict_tags(model, live) if live else ([], 0.0, 0)
        it = iter(tags)
        out: list[list[tuple[str, int, int]]] = []
        for row, ex in zip(rows, encoded, strict=True):
            if ex is None:
                out.append([])
                continue
            piece_tags = next(it)
            if "word_ids" in ex.extra:
                n_words = len(row["record"]["tokens"])
                word_tags = [OUTSIDE] * n_words  # words cut off by max_length predict nothing
                prev = None
                for w, tag in zip(ex.extra["word_ids"], piece_tags, strict=True):
                    if w is not None and w != prev:
                        word_tags[w] = tag
                    prev = w
                out.append(bio_spans(word_tags))
            else:
                out.append(char_spans_from_tags(ex.extra["offsets"], piece_tags))
        return out, loss_sum, count

    @or_generative
    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        """Exact span-set P/R/F1 (micro, macro, per type), seqeval's entity-level P/R/F1 over
        the BIO tags of word rows, and field match for character-span rows."""
        if not rows:
            return {"n": 0}
        predicted, loss_sum, count = self._extract(model, rows)
        gold = [
            bio_spans([str(t) for t in r["record"]["tags"]])
            if is_word_record(r["record"])
            else gold_char_spans(r["record"])
            for r in rows
        ]
        out: dict[str, Any] = {
            "n": len(rows),
            "scoring_mode": self.scoring_mode,
            "eval_loss": loss_sum / count if count else None,
            **span_set_scores(gold, predicted),
        }
        word_rows = [i for i, r in enumerate(rows) if is_word_record(r["record"])]
        if word_rows:
            out["seqeval"] = seqeval_scores(
                [[str(t) for t in rows[i]["record"]["tags"]] for i in word_rows],
                [spans_to_bio(predicted[i], len(rows[i]["record"]["tags"])) for i in word_rows],
            )
        text_rows = [i for i, r in enumerate(rows) if not is_word_record(r["record"])]
        if text_rows:
            texts = [str(rows[i]["record"].get("text", "")) for i in text_rows]
            out["field_match"] = field_match_scores(
                [fields_of(t, gold[i]) for t, i in zip(texts, text_rows, strict=True)],
                [fields_of(t, predicted[i]) for t, i in zip(texts, text_rows, strict=True)],
            )
        if per_example:
            out["per_example"] = [
                {"index": i, "gold": [list(x) for x in g], "prediction": [list(x) for x in p],
                 "correct": set(g) == set(p)}
                for i, (g, p) in enumerate(zip(gold, predicted, strict=True))
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        self.model_path = Path(base_path)
        if state.get("mode") == "field_match":
            self._field_task(list(state.get("fields") or []))
            return self.generative.restore(base_path, weights_dir, state, config)
        self.tokenizer = encoder_tokenizer(weights_dir, fast_for="extraction needs a fast tokenizer")
        self.labels = list(state["labels"])
        self.label_id = {label: i for i, label in enumerate(self.labels)}
        self.scoring_mode = str(state.get("scoring_mode", self.scoring_mode))
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        model = rebuild(self, config, self.model_path, weights_dir, adapter_of=lambda m: m.encoder)
        model.encoder = merged(model.encoder)  # encoders predict with the adapter merged in
        load_tensors(model.head, weights_dir / HEADS_FILE, "head.")
        return eval_ready(model)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """Spans with their text and the fields they fill: word ranges for ``tokens`` rows,
        character offsets for ``text`` rows. The field_match option parses the written JSON."""
        if self.generative is not None:
            out = []
            for found in self.generative.predict_rows(model, rows):
                fields = parse_fields(found["text"])
                out.append({"fields": fields or {}, "valid_json": fields is not None,
                            "generated": found["text"]})
            return out
        # prediction rows carry no gold: empty tags/spans keep every token in the encoding
        live = [{"record": {**r["record"], **({"tags": ["O"] * len(r["record"]["tokens"])}
                                              if is_word_record_input(r["record"]) else {})}}
                for r in rows]
        predicted = self._extract(model, live)[0]
        out = []
        for row, spans in zip(live, predicted, strict=True):
            record = row["record"]
            if is_word_record(record):
                words = [str(t) for t in record["tokens"]]
                items = [{"label": lb, "start": a, "end": b, "text": " ".join(words[a:b])}
                         for lb, a, b in spans]
            else:
                text = str(record.get("text", ""))
                items = [{"label": lb, "start": a, "end": b, "text": text[a:b]} for lb, a, b in spans]
            fields: dict[str, list[str]] = {}
            for item in items:
                fields.setdefault(item["label"], []).append(item["text"].strip())
            out.append({"spans": items, "fields": fields})
        return out

    # ---- output -------------------------------------------------------------------------
    @or_generative
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        save_encoder_model(model.encoder, {"head": model.head}, self.tokenizer, self.state(), out_dir)

    def state(self) -> dict[str, Any]:
        if self.generative is not None:
            return {**self.generative.state(), "fields": self.labels,
                    "scoring_mode": self.scoring_mode}
        return {
            "labels": self.labels,
            "scheme": "BIO",
            "scoring_mode": self.scoring_mode,
            "max_length": self.max_length,
        }
