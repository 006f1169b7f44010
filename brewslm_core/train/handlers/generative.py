"""The generative option of the encoder-side tasks: a causal LM (e.g. SmolLM2-135M-Instruct)
writes the answer (QA) or a JSON object of fields (structured extraction, ``field_match``).

Each record becomes a two-turn chat (task prompt -> target text) trained by the instruction-SFT
handler (loss on the answer tokens only); ``score()`` generates greedily and compares with the
same metrics the encoder heads use. The QA and extraction handlers switch to this when the base
model is a causal LM, so ``TrainConfig(task_profile="qa", base="smollm2")`` is all it takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .encoder_tools import device_of, evaluating
from .seq2seq import Seq2SeqHandler

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig


def is_causal_lm(model_path: Path) -> bool:
    """True when the folder holds a decoder-only model (the generative option applies)."""
    from transformers import AutoConfig

    from ...models import kind_of_config

    return kind_of_config(AutoConfig.from_pretrained(model_path)) == "causal_lm"


class GenerativeTask:
    """Prompt -> target text SFT plus generate-and-score, for one task.

    ``prompt(record)`` and ``target(record)`` write the chat turns; ``metrics(generated, rows)``
    turns the generated texts into the task's score dict.
    """

    def __init__(
        self,
        mode: str,
        prompt: Callable[[dict], str],
        target: Callable[[dict], str],
        metrics: Callable[[list[str], Sequence[dict]], dict[str, Any]],
        max_new_tokens: int,
        row_check: Callable[[str, dict], dict[str, Any]] | None = None,
    ) -> None:
        self.mode = mode
        self.prompt, self.target, self.metrics = prompt, target, metrics
        self.row_check = row_check  # one row's {..., "correct"} for Evaluate's per-example results
        self.max_new_tokens = max_new_tokens
        self.sft = Seq2SeqHandler()

    def chat(self, rows: Sequence[dict]) -> list[dict]:
        return [
            {
                "record": {
                    "messages": [
                        {"role": "user", "content": self.prompt(r["record"])},
                        {"role": "assistant", "content": self.target(r["record"])},
                    ]
                }
            }
            for r in rows
        ]

    # ---- the protocol, by way of the SFT handler ------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.sft.setup(model_path, self.chat(train_rows), config)

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        return self.sft.build_model(config)

    def encode(self, rows: Sequence[dict]) -> list:
        out = self.sft.encode(self.chat(rows))
        if rows and all(e is None for e in out):
            raise ValueError(
                f"every one of the {len(rows)} rows is longer than max_length="
                f"{self.sft.max_length} tokens with its prompt, so no answer token is left to "
                "learn from; raise max_length"
            )
        return out

    def collate(self, examples: Sequence, packing: bool) -> dict[str, Any]:
        return self.sft.collate(examples, packing)

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]):
        return self.sft.loss(model, batch)

    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        self.sft.save(model, out_dir)

    def state(self) -> dict[str, Any]:
        return {**self.sft.state(), "mode": self.mode, "max_new_tokens": self.max_new_tokens}

    # ---- generation and scoring -----------------------------------------------------------
    def generate(self, model: torch.nn.Module, rows: Sequence[dict], batch_size: int = 8) -> list[str]:
        """Greedy answers, left-padded batches (a decoder continues from the right edge)."""
        tok = self.sft.tokenizer
        prompts = [
            tok.apply_chat_template(
                [{"role": "user", "content": self.prompt(r["record"])}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for r in rows
        ]
        out: list[str] = []
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            with evaluating(model):
                for i in range(0, len(prompts), batch_size):
                    enc = tok(
                        prompts[i : i + batch_size],
                        return_tensors="pt",
                        padding=True,
                        add_special_tokens=False,
                    ).to(device_of(model))
                    ids = model.generate(
                        **enc,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        pad_token_id=tok.pad_token_id,
                    )
                    new = ids[:, enc["input_ids"].shape[1] :]
                    out.extend(tok.batch_decode(new, skip_special_tokens=True))
        finally:
            tok.padding_side = side
        return [text.strip() for text in out]

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        if not rows:
            return {"n": 0}
        loss = self.sft.loss_score(model, self.chat(rows)).get("eval_loss")
        generated = self.generate(model, rows)
        out = {"mode": self.mode, "eval_loss": loss, **self.metrics(generated, rows)}
        if per_example:
            out["per_example"] = [
                {"index": i, "gold": self.target(r["record"]), "prediction": g,
                 **(self.row_check(g, r) if self.row_check else {})}
                for i, (g, r) in enumerate(zip(generated, rows, strict=True))
            ]
        return out

    # ---- loading and prediction -------------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        self.max_new_tokens = int(state.get("max_new_tokens", self.max_new_tokens))
        return self.sft.restore(base_path, weights_dir, state, config)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """The generated answer text per row (the task handler shapes it)."""
        return [{"text": t} for t in self.generate(model, rows)]


_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_fields(text: str) -> dict[str, list[str]] | None:
    """A generated JSON object -> field -> sorted values; None when no JSON object parses."""
    found = _OBJECT.search(text)
    if found is None:
        return None
    try:
        value = json.loads(found.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    out: dict[str, list[str]] = {}
    for key, v in value.items():
        items = v if isinstance(v, list) else [v]
        values = sorted(str(x).strip() for x in items if x is not None and str(x).strip())
        if values:
            out[str(key)] = values
    return out


def fields_json(fields: dict[str, list[str]]) -> str:
    """The target JSON: one value as a string, several as a list; keys sorted."""
    return json.dumps(
        {k: (v[0] if len(v) == 1 else v) for k, v in sorted(fields.items())}, ensure_ascii=False
    )
