"""Preference alignment on a decoder-only model (default SmolLM2-135M-Instruct): DPO or KTO.

- DPO on preference records ``{"prompt": [messages], "chosen", "rejected"}``.
- KTO on unpaired records ``{"prompt": [messages], "completion", "label": bool}``.

The frozen reference is the base model itself: the same weights with the LoRA adapter switched
off (peft's ``disable_adapter()``), so no second copy of the model is held. That needs
``method="lora"``. A freshly initialised adapter adds exactly zero, so at step 0 the policy is
the reference and the DPO loss of every pair is log 2.

A sequence's log-probability is the sum over its completion tokens (the prompt carries no loss).
Chosen and rejected sequences (KTO: matched and mismatched pairs) of a micro-batch go through
one forward pass, packed side by side with positions restarted per sequence.

KTO's reference point z0 (the policy/reference KL) is estimated per micro-batch from
mismatched pairs, as the KTO paper does: prompt i with completion i+1 (mod n); the mean
log-ratio over those pairs, clamped at 0 and detached. A micro-batch of one example reuses the
previous micro-batch's estimate (0 before any).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import IGNORE, Example, HandlerHooks, lay_out
from .encoder_tools import device_of, evaluating, place, to_device
from .lora import causal_tokenizer, load_causal_lm

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

DPO, KTO = "dpo", "kto"


def alignment_mode(records: Sequence[dict]) -> str:
    """"dpo" when every record is a preference pair, "kto" when every one is labelled."""
    pairs = sum(1 for r in records if "chosen" in r and "rejected" in r)
    labelled = sum(1 for r in records if "completion" in r and "label" in r)
    if records and pairs == len(records):
        return DPO
    if records and labelled == len(records):
        return KTO
    raise ValueError(
        f"alignment rows must all be preference pairs (prompt, chosen, rejected) or all KTO rows "
        f"(prompt, completion, label); got {pairs} pairs and {labelled} labelled of "
        f"{len(records)}: prepare one kind per run"
    )


def next_token_targets(prompt: list[int], completion: list[int]) -> tuple[list[int], list[int]]:
    """Ids of prompt + completion and their shifted targets, IGNORE outside the completion."""
    ids = prompt + completion
    target = [ids[t + 1] if t + 1 >= len(prompt) else IGNORE for t in range(len(ids) - 1)]
    return ids, [*target, IGNORE]


class AlignmentHandler(HandlerHooks):
    task_profile = "alignment"
    lora_targets: Any = "all-linear"
    beta = 0.1  # strength of the pull towards the reference (DPO and KTO)
    desirable_weight = 1.0  # KTO lambda_D
    undesirable_weight = 1.0  # KTO lambda_U

    def __init__(self) -> None:
        self.tokenizer: Any = None
        self.model_path: Path | None = None
        self.mode = DPO
        self.max_length = 512
        self.pack_length = 0
        self.kl_estimate = 0.0  # KTO: the last micro-batch's z0

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        if config.method not in ("lora", "qlora"):
            raise ValueError(
                "alignment needs method='lora' (or 'qlora'): the frozen reference is the base model "
                "with the LoRA adapter switched off, which full fine-tuning does not have"
            )
        self.mode = alignment_mode([r["record"] for r in train_rows])
        self.model_path = Path(model_path)
        self.tokenizer = causal_tokenizer(self.model_path)
        self.max_length = config.max_length
        self.pack_length = config.pack_length

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        return load_causal_lm(self.model_path, config, self.lora_targets)

    # ---- data ---------------------------------------------------------------------------
    def _render(self, prompt: list[dict], completions: list[str]) -> tuple[str, list[str]]:
        """The prompt text (up to the assistant header) and each completion's rendered tail."""
        tpl = self.tokenizer.apply_chat_template
        messages = [{"role": m["role"], "content": str(m["content"])} for m in prompt]
        head = tpl(messages, tokenize=False, add_generation_prompt=True)
        tails = []
        for completion in completions:
            full = tpl([*messages, {"role": "assistant", "content": completion}], tokenize=False)
            if not full.startswith(head):
                raise ValueError("the chat template does not render the prompt as a prefix")
            tails.append(full[len(head) :])
        return head, tails

    def _fit(self, prompt: list[int], completions: list[list[int]]) -> tuple[list[int], list[list[int]]]:
        """Cut to max_length: completions keep their start, the prompt keeps its end."""
        longest = max(len(c) for c in completions)
        # the prompt gets what the longest completion leaves, and at least half when it needs it
        keep = min(len(prompt), max(self.max_length - longest, self.max_length // 2))
        prompt = prompt[len(prompt) - keep :]
        room = self.max_length - len(prompt)
        return prompt, [c[:room] for c in completions]

    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        records = [r["record"] for r in rows]
        rendered = []
        for rec in records:
            texts = [rec["chosen"], rec["rejected"]] if "chosen" in rec else [rec["completion"]]
            rendered.append(self._render(rec.get("prompt") or [], [str(t) for t in texts]))
        flat = [t for head, tails in rendered for t in (head, *tails)]
        ids = self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        out: list[Example | None] = []
        k = 0
        for rec, (_, tails) in zip(records, rendered, strict=True):
            prompt, completions = ids[k], ids[k + 1 : k + 1 + len(tails)]
            k += 1 + len(tails)
            prompt, completions = self._fit(prompt, completions)
            if not all(completions):
                out.append(None)  # nothing left to score
                continue
            if "chosen" in rec:
                chosen, c_target = next_token_targets(prompt, completions[0])
                rejected, r_target = next_token_targets(prompt, completions[1])
                # one Example per pair: its length (both sequences) is what the batch computes
                out.append(Example(chosen + rejected, c_target + r_target, {"split": len(chosen)}))
            else:
                seq, target = next_token_targets(prompt, completions[0])
                label = _as_bool(rec["label"])
                out.append(
                    Example(seq, target, {"prompt": prompt, "completion": completions[0], "label": label})
                )
        return out

    def _sequences(self, examples: Sequence[Example]) -> tuple[list[Example], Any]:
        """The sequences a micro-batch runs: DPO [chosen..., rejected...];
        KTO [matched..., mismatched...]. Plus the KTO labels."""
        import torch

        if self.mode == DPO:
            cut = [e.extra["split"] for e in examples]
            chosen = [Example(e.input_ids[:c], e.target[:c]) for e, c in zip(examples, cut, strict=True)]
            rejected = [Example(e.input_ids[c:], e.target[c:]) for e, c in zip(examples, cut, strict=True)]
            return chosen + rejected, None
        matched = [Example(e.input_ids, e.target) for e in examples]
        n = len(examples)
        mismatched = []
        if n > 1:
            for i, e in enumerate(examples):
                other = examples[(i + 1) % n].extra["completion"]
                ids, target = next_token_targets(e.extra["prompt"], other)
                mismatched.append(Example(ids[: self.max_length], target[: self.max_length]))
        labels = torch.tensor([e.extra["label"] for e in examples], dtype=torch.bool)
        return matched + mismatched, labels

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        sequences, labels = self._sequences(examples)
        rows, groups = lay_out(sequences, self.tokenizer.pad_token_id, packing, self.pack_length)
        target = place([s.target for s in sequences], groups, rows.input_ids.shape[1], IGNORE)
        batch = {
            "input_ids": rows.input_ids,
            "position_ids": rows.position_ids,
            "target": target,
            "segment": rows.segment,
            "n_sequences": len(sequences),
            "n_examples": len(examples),
            "tokens": rows.tokens,
            "real_tokens": rows.real_tokens,
        }
        if labels is not None:
            batch["labels"] = labels
        return batch

    # ---- training -----------------------------------------------------------------------
    def sequence_logps(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Summed completion-token log-probabilities, one per sequence of the batch."""
        import torch

        hidden = model.get_decoder()(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
        keep = batch["target"] != IGNORE
        # the LM head only where a loss is taken: prompt positions skip the vocab projection
        logits = model.get_output_embeddings()(hidden[keep]).float()
        token_logp = -torch.nn.functional.cross_entropy(logits, batch["target"][keep], reduction="none")
        out = token_logp.new_zeros(batch["n_sequences"])
        return out.index_add(0, batch["segment"][keep], token_logp)

    def reference_logps(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The same log-probs under the frozen reference: the base weights, adapter off."""
        import torch

        with torch.no_grad(), model.disable_adapter():
            return self.sequence_logps(model, batch)

    def pair_terms(self, model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Per-example losses and rewards (reward = beta * policy/reference log-ratio)."""
        import torch

        ratio = self.sequence_logps(model, batch) - self.reference_logps(model, batch)
        n = batch["n_examples"]
        if self.mode == DPO:
            chosen, rejected = self.beta * ratio[:n], self.beta * ratio[n:]
            margin = chosen - rejected
            loss = -torch.nn.functional.logsigmoid(margin)
            return {"loss": loss, "chosen": chosen, "rejected": rejected, "margin": margin}
        reward = self.beta * ratio[:n]
        if ratio.numel() > n:  # mismatched pairs present: this micro-batch's KL estimate
            self.kl_estimate = float(ratio[n:].detach().mean().clamp_min(0))
        z0 = self.beta * self.kl_estimate
        labels = batch["labels"]
        desirable = self.desirable_weight * (1 - torch.sigmoid(reward - z0))
        undesirable = self.undesirable_weight * (1 - torch.sigmoid(z0 - reward))
        loss = torch.where(labels, desirable, undesirable)
        return {"loss": loss, "reward": reward, "labels": labels}

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        terms = self.pair_terms(model, batch)
        return terms["loss"].sum(), batch["n_examples"]

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        """DPO: preference accuracy (policy margin > 0), mean reward margin ("alignment
        margin"), mean chosen/rejected rewards. KTO: mean reward of desirable and undesirable
        completions, their gap, and the share on the right side of 0."""
        import torch

        encoded = self.encode(rows)
        examples = [e for e in encoded if e is not None]
        if not examples:
            return {"n": 0, "mode": self.mode}
        parts: dict[str, list[torch.Tensor]] = {}
        kept_estimate = self.kl_estimate  # scoring must not move training's reference point
        with evaluating(model):
            for i in range(0, len(examples), 8):
                batch = to_device(self.collate(examples[i : i + 8], True), device_of(model))
                for key, value in self.pair_terms(model, batch).items():
                    parts.setdefault(key, []).append(value.detach().cpu())
        eval_estimate, self.kl_estimate = self.kl_estimate, kept_estimate
        cat = {k: torch.cat(v) for k, v in parts.items()}
        out: dict[str, Any] = {"n": len(examples), "mode": self.mode, "eval_loss": float(cat["loss"].mean())}
        kept = [i for i, e in enumerate(encoded) if e is not None]
        if self.mode == DPO:
            out.update(
                preference_accuracy=float((cat["margin"] > 0).float().mean()),
                reward_margin_mean=float(cat["margin"].mean()),
                reward_chosen_mean=float(cat["chosen"].mean()),
                reward_rejected_mean=float(cat["rejected"].mean()),
            )
            if per_example:
                out["per_example"] = [
                    {"index": i, "gold": "chosen", "prediction": "chosen" if m > 0 else "rejected",
                     "reward_margin": m, "correct": m > 0}
                    for i, m in zip(kept, cat["margin"].tolist(), strict=True)
                ]
            return out
        good, bad = cat["reward"][cat["labels"]], cat["reward"][~cat["labels"]]
        good_mean = float(good.mean()) if good.numel() else None
        bad_mean = float(bad.mean()) if bad.numel() else None
        right = torch.cat([good > 0, bad < 0]).float().mean()
        out.update(
            n_desirable=int(good.numel()),
            n_undesirable=int(bad.numel()),
            reward_desirable_mean=good_mean,
            reward_undesirable_mean=bad_mean,
            reward_gap=None if good_mean is None or bad_mean is None else good_mean - bad_mean,
            reward_sign_accuracy=float(right),
            kl_estimate=eval_estimate,
        )
        if per_example:
            out["per_example"] = [
                {"index": i, "gold": bool(lab), "reward": r, "correct": (r > 0) == bool(lab)}
                for i, r, lab in zip(kept, cat["reward"].tolist(), cat["labels"].tolist(), strict=True)
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        from .restore import eval_ready, rebuild

        self.mode = str(state.get("mode", DPO))
        self.beta = float(state.get("beta", self.beta))
        self.model_path = Path(base_path)
        self.tokenizer = causal_tokenizer(weights_dir)
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        return eval_ready(rebuild(self, config, self.model_path, weights_dir))

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict],
                     max_new_tokens: int = 64) -> list[dict[str, Any]]:
        """The aligned policy's greedy answer to each prompt; a row that also carries
        ``chosen`` and ``rejected`` gets the reward margin and which one the policy prefers."""
        from .seq2seq import Seq2SeqHandler

        gen = Seq2SeqHandler()
        gen.tokenizer = self.tokenizer
        chats = [[{"role": m["role"], "content": str(m["content"])} for m in _prompt(r["record"])]
                 for r in rows]
        texts = gen.generate_batch(model, chats, max_new_tokens)
        out: list[dict[str, Any]] = [{"text": t} for t in texts]
        pairs = [i for i, r in enumerate(rows) if "chosen" in r["record"] and "rejected" in r["record"]]
        if pairs and self.mode == DPO:
            records = [{"record": {**rows[i]["record"], "prompt": _prompt(rows[i]["record"])}} for i in pairs]
            scored = self.score(model, records, per_example=True).get("per_example", [])
            for item in scored:
                i = pairs[item["index"]]
                out[i].update(preferred=item["prediction"], reward_margin=item["reward_margin"])
        return out

    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "mode": self.mode,
            "beta": self.beta,
            "max_length": self.max_length,
            "loss_on": "completion_tokens",
            "reference": "base model with the LoRA adapter disabled",
        }
        if self.mode == KTO:
            state.update(
                desirable_weight=self.desirable_weight,
                undesirable_weight=self.undesirable_weight,
                kl_estimate="per micro-batch from mismatched pairs (prompt i, completion i+1)",
            )
        return state


def _as_bool(value: Any) -> bool:
    """KTO labels arrive as bools; accept the usual spellings of one, refuse anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "desirable", "good"):
        return True
    if text in ("false", "0", "no", "undesirable", "bad"):
        return False
    raise ValueError(f"KTO label {value!r} is not a boolean; map labels to true/false")


def _prompt(record: dict) -> list[dict]:
    """A record's prompt as chat messages (a plain string prompt becomes one user turn)."""
    prompt = record.get("prompt") or []
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)
