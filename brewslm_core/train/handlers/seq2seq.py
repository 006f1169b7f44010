"""Instruction SFT on a decoder-only model (default SmolLM2-135M-Instruct).

Rows are chat records (alpaca/sharegpt/messages), ``{"source","target"}`` pairs or plain
``{"text"}``. The chat template renders them; loss is taken on assistant tokens only. Examples
are packed into rows with positions restarted per example: with no 2-D mask given,
transformers reads the restarts as sequence boundaries and builds a block-causal mask, so no
example attends to another. The LM head runs only where a loss is taken, which skips the
vocabulary projection for every prompt token, and (``fused_lm_loss``) together with its
cross-entropy in chunks, never holding [tokens, vocab] logits (``lm_loss.py``).

With ``distill_from`` set, each example also carries the teacher's top-k next-token logprobs
(``train/distill.py``) and the loss mixes the labels' cross-entropy with the teacher's:
``(1 - alpha) * CE + alpha * T^2 * KD`` on every captured position (CE only elsewhere).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distill import DistillError, load_capture, tokenizer_fingerprint
from . import lm_loss
from .base import IGNORE, Example, HandlerHooks, lay_out
from .classification import device_of, to_device
from .lora import causal_tokenizer, load_causal_lm
from .restore import eval_ready, rebuild

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


class Seq2SeqHandler(HandlerHooks):
    task_profile = "seq2seq"
    lora_targets: Any = "all-linear"
    # what score() generates during training (Evaluate asks for every row)
    score_generate_rows = 8
    score_max_new_tokens = 48

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.max_length = 512
        self.pack_length = 0
        self.fused_head = True  # the output layer and its loss in chunks (lm_loss.py)
        self.project: Any = None
        # distillation (None = plain SFT, and no extra work anywhere)
        self.teacher: Any = None
        self.distill: dict[str, Any] = {}
        self.coverage = (0, 0)  # (training examples with a teacher row, all training examples)
        self._tally = [0.0, 0, 0.0, 0]  # ce sum, ce positions, kd sum, kd positions (this step)

    def bind(self, project: Any, run_dir: Path) -> None:
        """Remember the project (the engine calls this before ``setup``): captures live there."""
        self.project = project

    def use_teacher(self, config: TrainConfig) -> None:
        """Load the capture ``config.distill_from`` names (after setup: needs the tokenizer)."""
        self.teacher = None
        if not config.distill_from:
            return
        if self.project is None:
            raise DistillError("distillation reads a teacher capture from a project: bind(project, …) first")
        table = load_capture(self.project, config.distill_from)
        if table.meta["tokenizer_fingerprint"] != tokenizer_fingerprint(self.tokenizer):
            raise DistillError(
                f"teacher capture {config.distill_from!r} was made with a different tokenizer "
                f"vocabulary ({table.meta['teacher_path']}) than the student {self.model_path}: "
                "token ids would not line up; capture a teacher of the student's family"
            )
        self.teacher = table
        self.distill = {
            "distill_from": config.distill_from,
            "alpha": config.distill_alpha,
            "temperature": config.distill_temperature,
            "top_k": int(table.meta["top_k"]),
        }

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        self.model_path = Path(model_path)
        self.tokenizer = causal_tokenizer(self.model_path)
        self.max_length = config.max_length
        self.pack_length = config.pack_length
        self.fused_head = config.fused_lm_loss
        self.use_teacher(config)  # needs the tokenizer; a no-op unless distill_from is set

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        return load_causal_lm(self.model_path, config, self.lora_targets)

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
        out = self._encode(rows)
        if self.teacher is not None:
            self._attach_teacher(out)
        return out

    def _attach_teacher(self, examples: list[Example | None]) -> None:
        """Put the teacher's (ids, logprobs) rows on each example it has a capture for."""
        covered = total = 0
        for ex in examples:
            if ex is None:
                continue
            total += 1
            found = self.teacher.lookup(ex.input_ids)
            # a capture row per loss position, or none at all (e.g. cut at another max_length)
            if found is not None and len(found[0]) == sum(t != IGNORE for t in ex.target):
                ex.extra["teacher"] = found
                covered += 1
        self.coverage = (covered, total)

    def _encode(self, rows: Sequence[dict]) -> list[Example | None]:
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
        batch = {
            "input_ids": rows.input_ids,
            "position_ids": rows.position_ids,
            "target": target,
            "n_examples": len(examples),
            "tokens": rows.tokens,
            "real_tokens": rows.real_tokens,
        }
        if self.teacher is not None:
            batch.update(self._teacher_rows(examples, groups))
        return batch

    def _teacher_rows(self, examples: Sequence[Example], groups: list[list[int]]) -> dict[str, Any]:
        """Teacher rows in the order of ``target[target != IGNORE]``: row by row, and within a
        row example by example as packed; zeros and mask False where an example has none."""
        import numpy as np
        import torch

        k = self.distill["top_k"]
        ids: list[Any] = []
        logp: list[Any] = []
        mask: list[Any] = []
        for group in groups:
            for i in group:
                found = examples[i].extra.get("teacher")
                if found is not None:
                    ids.append(found[0])
                    logp.append(found[1])
                    mask.append(np.ones(len(found[0]), dtype=bool))
                else:
                    n = sum(t != IGNORE for t in examples[i].target)
                    ids.append(np.zeros((n, k), dtype=np.int32))
                    logp.append(np.zeros((n, k), dtype=np.float32))
                    mask.append(np.zeros(n, dtype=bool))
        return {
            "teacher_ids": torch.from_numpy(np.concatenate(ids)).long(),
            "teacher_logp": torch.from_numpy(np.concatenate(logp)).float(),
            "teacher_mask": torch.from_numpy(np.concatenate(mask)),
        }

    # ---- training -----------------------------------------------------------------------
    def supervised_hidden(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """Last hidden states at the positions that carry a loss (row-major order), their mask."""
        decoder = model.get_decoder()
        hidden = decoder(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
        keep = batch["target"] != IGNORE
        return hidden[keep], keep

    def supervised_logits(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """Logits at the positions that carry a loss (row-major order) and their mask."""
        hidden, keep = self.supervised_hidden(model, batch)
        return model.get_output_embeddings()(hidden), keep

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        if "teacher_ids" in batch and model.training:
            logits, keep = self.supervised_logits(model, batch)
            return self._distill_loss(logits, batch["target"][keep], batch), int(keep.sum())
        hidden, keep = self.supervised_hidden(model, batch)
        head, target = model.get_output_embeddings(), batch["target"][keep]
        if self.fused_head and lm_loss.fits(head):  # no [tokens, vocab] logits (lm_loss.py)
            return lm_loss.linear_cross_entropy(hidden, head.weight, target), int(keep.sum())
        loss = torch.nn.functional.cross_entropy(head(hidden).float(), target, reduction="sum")
        return loss, int(keep.sum())

    def _distill_loss(
        self, logits: torch.Tensor, target: torch.Tensor, batch: dict[str, Any]
    ) -> torch.Tensor:
        """(1 - alpha) * CE + alpha * T^2 * KD summed over positions; CE alone where no teacher.

        KD is the cross-entropy of the teacher's top-k distribution (softmax(logp / T) over its
        k ids) against the student's log_softmax(z / T) over the full vocabulary, read at those
        ids; logsumexp gives the normaliser without a second [positions, vocab] tensor.
        """
        import torch

        alpha, temp = self.distill["alpha"], self.distill["temperature"]
        z = logits.float()
        ce = torch.nn.functional.cross_entropy(z, target, reduction="none")
        scaled = z / temp if temp != 1.0 else z
        student = scaled.gather(1, batch["teacher_ids"]) - torch.logsumexp(scaled, dim=-1, keepdim=True)
        teacher = torch.softmax(batch["teacher_logp"] / temp, dim=-1)
        mask = batch["teacher_mask"]
        kd = -(teacher * student).sum(dim=-1) * mask
        weight = torch.where(mask, 1.0 - alpha, 1.0)
        self._tally[0] += float(ce.detach().sum())
        self._tally[1] += int(ce.numel())
        self._tally[2] += float(kd.detach().sum())
        self._tally[3] += int(mask.sum())
        return (weight * ce).sum() + alpha * temp * temp * kd.sum()

    def step_metrics(self) -> dict[str, Any]:
        """Per-token CE and KD of the last optimizer step (then reset); empty when not distilling."""
        if self.teacher is None:
            return {}
        ce, n_ce, kd, n_kd = self._tally
        self._tally = [0.0, 0, 0.0, 0]
        return {"ce_loss": ce / n_ce if n_ce else None, "kd_loss": kd / n_kd if n_kd else None}

    def loss_score(self, model: torch.nn.Module, rows: Sequence[dict]) -> dict[str, Any]:
        """Teacher-forced loss and perplexity on the rows' labels."""
        import torch

        # held-out rows are scored on their labels alone, even when training distils
        examples = [e for e in self._encode(rows) if e is not None]
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

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False,
              generate_rows: int | None = None) -> dict[str, Any]:
        """Loss and perplexity, then greedy answers to the first ``generate_rows`` prompts
        (``score_generate_rows`` by default; all of them under Evaluate) scored against the
        reference answers: sacrebleu BLEU and chrF, rouge-score ROUGE-L F1 (``bleu_rouge``)."""
        out = self.loss_score(model, rows)
        if not out.get("n"):
            return out
        limit = self.score_generate_rows if generate_rows is None else generate_rows
        pairs = [(i, p, ref) for i, (p, ref) in enumerate(self.prompts(rows)) if p is not None][:limit]
        if not pairs:
            return out
        was_training = model.training
        model.eval()
        try:
            hyps = self.generate_batch(model, [p for _, p, _ in pairs], self.score_max_new_tokens)
        finally:
            model.train(was_training)
        refs = [r for _, _, r in pairs]
        out.update(text_metrics(hyps, refs))
        out["generated_n"] = len(hyps)
        if per_example:
            out["per_example"] = [
                {"index": i, "gold": ref, "prediction": hyp, **per_text(hyp, ref)}
                for (i, _, ref), hyp in zip(pairs, hyps, strict=True)
            ]
        return out

    # ---- prompts, generation, loading -----------------------------------------------------
    def prompts(self, rows: Sequence[dict]) -> list[tuple[list[dict] | None, str]]:
        """Per row: the chat up to its last assistant turn, and that turn (the reference)."""
        out: list[tuple[list[dict] | None, str]] = []
        for row in rows:
            messages = record_messages(row["record"]) or []
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
            if last < 1:
                out.append((None, ""))
            else:
                out.append((messages[:last], messages[last]["content"]))
        return out

    def generate_batch(self, model: torch.nn.Module, chats: Sequence[list[dict]],
                       max_new_tokens: int = 64, batch_size: int = 8) -> list[str]:
        """Greedy answers to chat prompts, left-padded batches (a decoder continues from the
        right edge)."""
        import torch

        tok = self.tokenizer
        texts = [tok.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
                 for c in chats]
        out: list[str] = []
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            with torch.no_grad():
                for i in range(0, len(texts), batch_size):
                    enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device_of(model))
                    ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                         pad_token_id=tok.pad_token_id)
                    out.extend(tok.batch_decode(ids[:, enc["input_ids"].shape[1] :],
                                                skip_special_tokens=True))
        finally:
            tok.padding_side = side
        return [t.strip() for t in out]

    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        """Handler state from the plan and the trained model (adapter or full) from its folder."""
        self.model_path = Path(base_path)
        self.tokenizer = causal_tokenizer(weights_dir)
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        return eval_ready(rebuild(self, config, self.model_path, weights_dir))

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict],
                     max_new_tokens: int = 64) -> list[dict[str, Any]]:
        """Generated text for each row: a chat (its last user turn answered), a source/target
        pair (the source), or a plain ``text`` prompt."""
        chats = []
        for row in rows:
            record = row["record"]
            messages = record_messages(record)
            if messages is None:
                messages = [{"role": "user", "content": str(record.get("text", ""))}]
            while messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            chats.append(messages)
        return [{"text": t} for t in self.generate_batch(model, chats, max_new_tokens)]

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
        out: dict[str, Any] = {"max_length": self.max_length, "loss_on": "assistant_tokens"}
        if self.teacher is not None:
            covered, total = self.coverage
            out["distill"] = {**self.distill, "examples_with_teacher": covered, "examples": total}
            if covered < total:
                out["notes"] = [
                    f"{total - covered} of {total} training examples have no row in teacher capture "
                    f"{self.distill['distill_from']!r} (other rows or another max_length): "
                    "they train on the labels only"
                ]
        return out


def text_metrics(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu, 0-100) and mean ROUGE-L F1 (rouge-score, 0-1)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score),
        "rougeL": sum(rouge) / len(rouge) if rouge else 0.0,
    }


def per_text(hyp: str, ref: str) -> dict[str, Any]:
    """One example's sentence chrF and ROUGE-L; ``correct`` = ROUGE-L F1 >= 0.5."""
    import sacrebleu
    from rouge_score import rouge_scorer

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(ref, hyp)["rougeL"].fmeasure
    return {"chrf": float(sacrebleu.sentence_chrf(hyp, [ref]).score), "rougeL": rouge,
            "correct": rouge >= PASS_ROUGE_L}


PASS_ROUGE_L = 0.5  # an SFT example passes when its ROUGE-L F1 against the reference reaches this
