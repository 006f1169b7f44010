"""Safety classification on an encoder (default all-MiniLM-L6-v2): two heads on one pooled text.

A safe/unsafe head (softmax over two classes) and a multi-label category head (one sigmoid per
category seen in training, e.g. hate_speech, offensive_language). The text is mean-pooled over
its own tokens, as in classification, so several texts pack into one row. The loss is the
binary cross-entropy of the verdict plus the mean per-category binary cross-entropy.
"""

from __future__ import annotations

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
    mean_pool,
    packed_batch,
    save_encoder_model,
    to_device,
)
from .restore import eval_ready, load_tensors, merged, rebuild

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

LABELS = ("safe", "unsafe")
UNSAFE = 1


def _module():  # torch is imported lazily; the class is built on first use
    import torch

    class EncoderSafety(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module, hidden: int, n_categories: int) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(hidden, len(LABELS))
            self.category_head = torch.nn.Linear(hidden, max(n_categories, 1))
            self.n_categories = n_categories

        def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = encode_tokens(self.encoder, batch)
            pooled = mean_pool(hidden, batch["pool_index"], batch["n_examples"])
            categories = self.category_head(pooled)[:, : self.n_categories]
            return self.head(pooled), categories

    return EncoderSafety


class SafetyHandler(HandlerHooks):
    task_profile = "safety"
    lora_targets: Any = ENCODER_LORA_TARGETS
    threshold = 0.5  # category probability above which a category is predicted

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.categories: list[str] = []
        self.category_id: dict[str, int] = {}
        self.max_length = 128
        self.pack_length = 0

    # ---- setup --------------------------------------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.model_path = Path(model_path)
        self.tokenizer = encoder_tokenizer(self.model_path)
        self.max_length = config.max_length
        self.pack_length = config.pack_length
        seen = {str(r["record"].get("label")) for r in train_rows}
        if not set(LABELS) <= seen:
            raise ValueError(
                f"safety training needs both 'safe' and 'unsafe' rows; the training rows hold "
                f"{sorted(seen)}. Map more rows (or fix the safe/unsafe values of the mapping)"
            )
        self.categories = sorted(
            {str(c) for r in train_rows for c in r["record"].get("categories") or []}
        )
        self.category_id = {c: i for i, c in enumerate(self.categories)}

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        encoder = load_encoder(self.model_path, config, self.lora_targets)
        return _module()(encoder, encoder.config.hidden_size, len(self.categories))

    # ---- data ---------------------------------------------------------------------------
    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        """None for a row whose label is neither safe nor unsafe. Categories never seen in
        training are left out of the target (``extra["unknown_categories"]`` counts them)."""
        texts = [str(r["record"].get("text", "")) for r in rows]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        out: list[Example | None] = []
        for row, ids in zip(rows, enc, strict=True):
            record = row["record"]
            label = str(record.get("label"))
            if label not in LABELS:
                out.append(None)
                continue
            multi_hot = [0.0] * len(self.categories)
            unknown = 0
            for c in record.get("categories") or []:
                if str(c) in self.category_id:
                    multi_hot[self.category_id[str(c)]] = 1.0
                else:
                    unknown += 1
            extra = {"categories": multi_hot, "unknown_categories": unknown}
            out.append(Example(list(ids), LABELS.index(label), extra))
        return out

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import torch

        batch, _, _ = packed_batch(
            examples, self.tokenizer.pad_token_id or 0, packing, self.pack_length
        )
        batch["labels"] = torch.tensor([e.target for e in examples], dtype=torch.long)
        batch["categories"] = torch.tensor(
            [e.extra["categories"] for e in examples], dtype=torch.float32
        ).reshape(len(examples), len(self.categories))
        return batch

    # ---- training -----------------------------------------------------------------------
    def _loss(self, verdict: Any, categories: Any, batch: dict[str, Any]) -> torch.Tensor:
        import torch

        loss = torch.nn.functional.cross_entropy(verdict.float(), batch["labels"], reduction="sum")
        if self.categories:
            per_cat = torch.nn.functional.binary_cross_entropy_with_logits(
                categories.float(), batch["categories"], reduction="none"
            )
            loss = loss + per_cat.mean(dim=1).sum()
        return loss

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        verdict, categories = model(batch)
        return self._loss(verdict, categories, batch), batch["n_examples"]

    def predict(
        self, model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 64
    ) -> tuple[list[int], list[list[int]], float]:
        """Verdict index and category 0/1 list per example, plus the summed loss."""
        import torch

        verdicts: list[int] = []
        cats: list[list[int]] = []
        loss_sum = 0.0
        with evaluating(model):
            for i in range(0, len(examples), batch_size):
                batch = to_device(self.collate(examples[i : i + batch_size], True), device_of(model))
                verdict, categories = model(batch)
                loss_sum += float(self._loss(verdict, categories, batch))
                verdicts.extend(verdict.argmax(-1).tolist())
                cats.extend((torch.sigmoid(categories) > self.threshold).int().tolist())
        return verdicts, cats, loss_sum

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        """Unsafe recall first (the number a safety gate is about), then precision, accuracy,
        macro F1, per-class P/R/F1, the confusion matrix and per-category F1 (scikit-learn)."""
        from sklearn.metrics import (
            accuracy_score,
            confusion_matrix,
            f1_score,
            precision_recall_fscore_support,
        )

        encoded = self.encode(rows)
        examples = [e for e in encoded if e is not None]
        if not examples:
            return {"n": 0, "skipped_unknown_label": len(rows)}
        verdicts, cats, loss_sum = self.predict(model, examples)
        gold = [e.target for e in examples]
        p, r, f, support = precision_recall_fscore_support(
            gold, verdicts, labels=[0, 1], zero_division=0
        )
        out: dict[str, Any] = {
            "unsafe_recall": float(r[UNSAFE]),
            "unsafe_precision": float(p[UNSAFE]),
            "n": len(examples),
            "skipped_unknown_label": len(rows) - len(examples),
            "eval_loss": loss_sum / len(examples),
            "accuracy": float(accuracy_score(gold, verdicts)),
            "macro_f1": float(f1_score(gold, verdicts, labels=[0, 1], average="macro", zero_division=0)),
            "confusion_matrix": {"labels": list(LABELS),
                                 "matrix": confusion_matrix(gold, verdicts, labels=[0, 1]).tolist()},
            "per_class": {
                name: {
                    "precision": float(p[i]),
                    "recall": float(r[i]),
                    "f1": float(f[i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(LABELS)
            },
            "unknown_categories": sum(e.extra["unknown_categories"] for e in examples),
        }
        if self.categories:
            gold_cats = [[int(v) for v in e.extra["categories"]] for e in examples]
            out["per_category_f1"] = {
                name: float(
                    f1_score(
                        [g[k] for g in gold_cats], [c[k] for c in cats], zero_division=0
                    )
                )
                for k, name in enumerate(self.categories)
            }
            out["category_micro_f1"] = float(
                f1_score(gold_cats, cats, average="micro", zero_division=0)
            )
        if per_example:
            kept = [i for i, e in enumerate(encoded) if e is not None]
            out["per_example"] = [
                {"index": i, "gold": LABELS[g], "prediction": LABELS[v], "correct": g == v}
                for i, g, v in zip(kept, gold, verdicts, strict=True)
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        self.model_path = Path(base_path)
        self.tokenizer = encoder_tokenizer(weights_dir)
        self.categories = list(state.get("categories") or [])
        self.category_id = {c: i for i, c in enumerate(self.categories)}
        self.threshold = float(state.get("category_threshold", self.threshold))
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        model = rebuild(self, config, self.model_path, weights_dir, adapter_of=lambda m: m.encoder)
        model.encoder = merged(model.encoder)  # encoders predict with the adapter merged in
        load_tensors(model.head, weights_dir / HEADS_FILE, "head.")
        load_tensors(model.category_head, weights_dir / HEADS_FILE, "category_head.")
        return eval_ready(model)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """Verdict with its unsafe probability, and the categories above the threshold."""
        import torch

        texts = [str(r["record"].get("text", "")) for r in rows]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        examples = [Example(list(ids), 0, {"categories": [0.0] * len(self.categories)}) for ids in enc]
        out: list[dict[str, Any]] = []
        with evaluating(model):
            for i in range(0, len(examples), 64):
                batch = to_device(self.collate(examples[i : i + 64], True), device_of(model))
                verdict, categories = model(batch)
                unsafe = torch.softmax(verdict.float(), -1)[:, UNSAFE].tolist()
                cat_p = torch.sigmoid(categories.float()).tolist()
                for u, cp in zip(unsafe, cat_p, strict=True):
                    scores = dict(zip(self.categories, cp, strict=True))
                    out.append({
                        "label": LABELS[UNSAFE] if u >= 0.5 else LABELS[0],
                        "unsafe_score": u,
                        "categories": [c for c, v in scores.items() if v > self.threshold],
                        "category_scores": scores,
                    })
        return out

    # ---- output -------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        heads = {"head": model.head, "category_head": model.category_head}
        save_encoder_model(model.encoder, heads, self.tokenizer, self.state(), out_dir)

    def state(self) -> dict[str, Any]:
        return {
            "labels": list(LABELS),
            "categories": self.categories,
            "category_threshold": self.threshold,
            "pooling": "mean",
            "max_length": self.max_length,
        }
