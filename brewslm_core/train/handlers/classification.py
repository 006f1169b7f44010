"""Sequence classification on an encoder (default all-MiniLM-L6-v2) with packed rows.

Several short texts share one row; a block-diagonal mask keeps them from attending to each
other, positions restart per text, and each text is mean-pooled over its own tokens (the
pooling MiniLM was trained with), so a packed batch gives the same logits as one text per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Example, HandlerHooks, lay_out
from .encoder_tools import ENCODER_LORA_TARGETS, encoder_tokenizer, head_module, load_encoder
from .encoder_tools import device_of as device_of  # re-exported: other modules import them here
from .encoder_tools import to_device as to_device
from .restore import eval_ready, load_tensors, merged, rebuild

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

HEAD_FILE = "head.safetensors"
LABELS_FILE = "labels.json"


class ClassificationHandler(HandlerHooks):
    task_profile = "classification"
    lora_targets: Any = ENCODER_LORA_TARGETS
    text_key = "text"

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.labels: list[str] = []
        self.label_id: dict[str, int] = {}
        self.model_path: Path | None = None
        self.max_length = 128
        self.pack_length = 0

    # ---- setup --------------------------------------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.model_path = Path(model_path)
        self.tokenizer = encoder_tokenizer(self.model_path)
        self.max_length = config.max_length
        self.pack_length = config.pack_length
        self.labels = sorted({self.label_of(r["record"]) for r in train_rows})
        if len(self.labels) < 2:
            raise ValueError(
                f"classification needs at least 2 labels in the training rows, found {self.labels}"
            )
        self.label_id = {label: i for i, label in enumerate(self.labels)}

    def label_of(self, record: dict) -> str:
        return str(record["label"])

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        encoder = load_encoder(self.model_path, config, self.lora_targets)  # seeded: the head init follows
        return head_module()(encoder, encoder.config.hidden_size, len(self.labels), pooled=True)

    # ---- data ---------------------------------------------------------------------------
    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        texts = [str(r["record"].get(self.text_key, "")) for r in rows]
        pairs = [r["record"].get("text_pair") for r in rows]
        enc = self._token_ids(texts, pairs)
        out: list[Example | None] = []
        for row, ids in zip(rows, enc, strict=True):
            label = self.label_id.get(self.label_of(row["record"]))
            out.append(None if label is None else Example(list(ids), label))
        return out

    def _token_ids(self, texts: list[str], pairs: list[Any]) -> list[list[int]]:
        """Token ids per row; a sentence pair (``text_pair``) is encoded as the pair, both texts
        in one sequence with the tokenizer's separator, truncating the longer side first."""
        kw = {"truncation": True, "max_length": self.max_length}
        paired = [i for i, p in enumerate(pairs) if p not in (None, "")]
        if not paired:
            return self.tokenizer(texts, **kw)["input_ids"]
        ids: list[list[int]] = [[] for _ in texts]
        single = [i for i in range(len(texts)) if i not in set(paired)]
        if single:
            for i, row in zip(single, self.tokenizer([texts[i] for i in single], **kw)["input_ids"],
                              strict=True):
                ids[i] = row
        both = self.tokenizer([texts[i] for i in paired], [str(pairs[i]) for i in paired],
                              truncation="longest_first", max_length=self.max_length)["input_ids"]
        for i, row in zip(paired, both, strict=True):
            ids[i] = row
        return ids

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import torch

        rows, groups = lay_out(examples, self.tokenizer.pad_token_id or 0, packing,
                               self.pack_length)
        seg = rows.segment
        if rows.tokens == rows.real_tokens and all(len(g) == 1 for g in groups):
            mask = None  # one text per row, no padding: the unmasked (faster) attention path
        else:
            # True = may attend. Padding forms its own block so no softmax row is empty.
            mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1)
        n = len(examples)
        pool = torch.where(seg >= 0, seg, torch.full_like(seg, n)).flatten()
        return {
            "input_ids": rows.input_ids,
            "position_ids": rows.position_ids,
            "attention_mask": mask,
            "pool_index": pool,
            "n_examples": n,
            "labels": torch.tensor([e.target for e in examples], dtype=torch.long),
            "tokens": rows.tokens,
            "real_tokens": rows.real_tokens,
        }

    # ---- training -----------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        logits = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="sum")
        return loss, batch["n_examples"]

    def predict(self, model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 64):
        """Predicted class per example (in the given order) and the summed loss.

        Examples run longest-first in batches of similar length, so little of a packed row is
        padding; the order of the results is the order given."""
        import torch

        order = sorted(range(len(examples)), key=lambda i: -examples[i].length)
        preds = [0] * len(examples)
        loss_sum = 0.0
        with torch.no_grad():
            for i in range(0, len(order), batch_size):
                part = order[i : i + batch_size]
                batch = to_device(self.collate([examples[j] for j in part], True), device_of(model))
                logits = model(batch)
                loss_sum += float(
                    torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="sum")
                )
                for j, p in zip(part, logits.argmax(-1).tolist(), strict=True):
                    preds[j] = p
        return preds, loss_sum

    def scores_of(self, model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 64):
        """Class probabilities (a list per example, in the given order), longest-first batches."""
        import torch

        order = sorted(range(len(examples)), key=lambda i: -examples[i].length)
        probs: list[list[float]] = [[] for _ in examples]
        with torch.no_grad():
            for i in range(0, len(order), batch_size):
                part = order[i : i + batch_size]
                batch = to_device(self.collate([examples[j] for j in part], True), device_of(model))
                for j, p in zip(part, torch.softmax(model(batch).float(), -1).tolist(), strict=True):
                    probs[j] = p
        return probs

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix
        (scikit-learn). ``per_example`` adds one {id, gold, prediction, correct} per row."""
        encoded = self.encode(rows)
        examples = [e for e in encoded if e is not None]
        if not examples:
            return {"n": 0, "skipped_unknown_label": len(rows)}
        was_training = model.training
        model.eval()
        try:
            preds, loss_sum = self.predict(model, examples)
        finally:
            model.train(was_training)
        gold = [e.target for e in examples]
        out = {
            "n": len(examples),
            "skipped_unknown_label": len(rows) - len(examples),
            "eval_loss": loss_sum / len(examples),
            **label_metrics(gold, preds, self.labels),
        }
        if per_example:
            kept = [i for i, e in enumerate(encoded) if e is not None]
            out["per_example"] = [
                {"index": i, "gold": self.labels[g], "prediction": self.labels[p], "correct": g == p}
                for i, g, p in zip(kept, gold, preds, strict=True)
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        """Handler state from the run's plan, and the trained model from its weights folder."""
        self.model_path = Path(base_path)
        self.tokenizer = encoder_tokenizer(weights_dir)
        self.labels = list(state["labels"])
        self.label_id = {label: i for i, label in enumerate(self.labels)}
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        model = rebuild(self, config, self.model_path, weights_dir, adapter_of=lambda m: m.encoder)
        model.encoder = merged(model.encoder)  # encoders predict with the adapter merged in
        load_tensors(model.head, weights_dir / HEAD_FILE)
        return eval_ready(model)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """Label and per-label probability for each row's text."""
        texts = [str(r["record"].get(self.text_key, "")) for r in rows]
        pairs = [r["record"].get("text_pair") for r in rows]
        enc = self._token_ids(texts, pairs)
        examples = [Example(list(ids), 0) for ids in enc]
        probs = self.scores_of(model, examples)
        out = []
        for p in probs:
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"label": self.labels[best], "score": p[best],
                        "scores": dict(zip(self.labels, p, strict=True))})
        return out

    # ---- output -------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        model.encoder.save_pretrained(out_dir, safe_serialization=True)
        head = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
        save_file(head, str(out_dir / HEAD_FILE))
        self.tokenizer.save_pretrained(out_dir)
        (out_dir / LABELS_FILE).write_text(json.dumps(self.state(), indent=2), encoding="utf-8")

    def state(self) -> dict[str, Any]:
        return {"labels": self.labels, "pooling": "mean", "max_length": self.max_length}



def label_metrics(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, per-class P/R/F1/support and the confusion matrix (rows = gold)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        # macro over the labels present in gold or prediction (sklearn's default set)
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                   "support": int(support[i])}
            for i, name in enumerate(labels)
        },
        "confusion_matrix": {"labels": list(labels),
                             "matrix": confusion_matrix(gold, pred, labels=ids).tolist()},
    }
