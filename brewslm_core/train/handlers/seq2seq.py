"""Instruction SFT on a decoder-only model (default SmolLM2-135M-Instruct).

Rows are chat records (alpaca/sharegpt/messages), ``{"source","target"}`` pairs or plain
``{"text"}``. The chat template renders them; loss is taken on assistant tokens only. Examples
are packed into rows with positions restarted per example: with no 2-D mask given,
transformers reads the restarts as sequence boundaries and builds a block-causal mask, so no
example attends to another. The LM head runs only where a loss is taken, which skips the
vocabulary projection for every prompt token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import IGNORE, Example, lay_out
from .classification import device_of, to_device
from .lora import adapt

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig


def record_messages(record: dict) -> list[dict] | None:
    """Chat messages for a record, or None for a plain-text record."""
    if "messages" in record:
        return [{"role": m["role"], "content": str(m["content"])} for m in record["messages"]]
    if "source" in record and "target" in record:
        return [
            {"role": "user", "content": str(record["source"])},
            {"role": "assistant", "content": str(record["target"])},
        ]
    return None


class Seq2SeqHandler:
    task_profile = "seq2seq"
    lora_targets: Any = "all-linear"

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.max_length = 512
        self.pack_length = 0

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        from transformers import AutoTokenizer

        self.model_path = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = config.max_length
        self.pack_length = config.pack_length

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(config.seed)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path, attn_implementation="sdpa", dtype=torch.float32
        )
        model.config.use_cache = False
        return adapt(model, config, self.lora_targets)

    # ---- data ---------------------------------------------------------------------------
    def _pieces(self, record: dict) -> list[tuple[str, bool]]:
        """The rendered text cut into (piece, supervised) in order."""
        messages = record_messages(record)
        if messages is None:
            return [(str(record.get("text", "")) + (self.tokenizer.eos_token or ""), True)]
        tpl = self.tokenizer.apply_chat_template
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = tpl(messages[:i], tokenize=False, add_generation_prompt=True)
            full = tpl(messages[: i + 1], tokenize=False)
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ValueError("the chat template does not render turns as prefixes")
            pieces.append((prompt[len(done) :], False))
            pieces.append((full[len(prompt) :], True))
            done = full
        return pieces

    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        per_row = [self._pieces(r["record"]) for r in rows]
        flat = [text for pieces in per_row for text, _ in pieces]
        # one batched tokenizer call for every piece of every row
        ids = self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        out: list[Example | None] = []
        k = 0
        for pieces in per_row:
            tokens: list[int] = []
            supervised: list[bool] = []
            for _, sup in pieces:
                tokens.extend(ids[k])
                supervised.extend([sup] * len(ids[k]))
                k += 1
            tokens, supervised = tokens[: self.max_length], supervised[: self.max_length]
            # next-token targets, shifted here so packed neighbours never leak into the loss
            target = [tokens[t + 1] if supervised[t + 1] else IGNORE for t in range(len(tokens) - 1)]
            target.append(IGNORE)
            out.append(Example(tokens, target) if any(t != IGNORE for t in target) else None)
        return out

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import torch

        rows, groups = lay_out(examples, self.tokenizer.pad_token_id, packing, self.pack_length)
        target = torch.full_like(rows.input_ids, IGNORE)
        for r, group in enumerate(groups):
            at = 0
            for i in group:
                n = examples[i].length
                target[r, at : at + n] = torch.as_tensor(examples[i].target)
                at += n
        return {
            "input_ids": rows.input_ids,
            "position_ids": rows.position_ids,
            "target": target,
            "n_examples": len(examples),
            "tokens": rows.tokens,
            "real_tokens": rows.real_tokens,
        }

    # ---- training -----------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        decoder = model.get_decoder()
        hidden = decoder(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
        keep = batch["target"] != IGNORE
        logits = model.get_output_embeddings()(hidden[keep])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["target"][keep], reduction="sum")
        return loss, int(keep.sum())

    def score(self, model: torch.nn.Module, rows: Sequence[dict]) -> dict[str, Any]:
        import torch

        examples = [e for e in self.encode(rows) if e is not None]
        if not examples:
            return {"n": 0}
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for i in range(0, len(examples), 8):
                    batch = to_device(self.collate(examples[i : i + 8], True), device_of(model))
                    loss, n = self.loss(model, batch)
                    total, count = total + float(loss), count + n
        finally:
            model.train(was_training)
        mean = total / max(count, 1)
        return {"n": len(examples), "eval_loss": mean, "perplexity": math.exp(min(mean, 50.0))}

    def generate(self, model: torch.nn.Module, messages: list[dict], max_new_tokens: int = 64) -> str:
        """Greedy answer to a chat prompt (for smoke checks and notebooks)."""
        import torch

        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"].to(device_of(model))
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)

    def state(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "loss_on": "assistant_tokens"}
