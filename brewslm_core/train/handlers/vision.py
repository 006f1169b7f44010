"""Image + chat -> answer: SmolLM2 (by default) with a small, RANDOMLY INITIALISED vision encoder.

No pretrained vision weights install offline. The handler builds a 4-layer ViT from a config
(64 x 64 images, 8 x 8 patches; see ``train/vision_model.py``) and an MLP projector into the
language model's hidden size, and says so in its ``state()`` (``notes``, written to the run's
plan.json) and in ``score()``. Vision encoder and projector are always trained; the language
model gets LoRA (method "lora", or "qlora" over its 4-bit base) or is trained fully (method "full").

Each ``<image>`` placeholder in a user turn becomes ``tokens_per_image`` slots (16 by default)
whose input embeddings are replaced by that image's projected patches, in order. A record with
fewer placeholders than images gets the missing ones at the start of its first user turn; one
with more placeholders than images, or whose image slots do not fit in ``max_length``, is
skipped. Loss is taken on assistant tokens only, as in the instruction-SFT handler.
``score()`` answers the last user turn greedily and reports exact match and token F1 against
the last assistant turn (SQuAD normalisation), plus the teacher-forced eval loss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..vision_model import MERGE, RANDOM_INIT_NOTE, VISION_DEFAULTS, build_vision_language
from ..vision_model import tokens_per_image as _tokens_per_image
from .base import IGNORE, Example, lay_out
from .encoder_tools import device_of, evaluating, to_device
from .lora import causal_tokenizer, load_causal_lm
from .qa import exact_match, token_f1
from .seq2seq import Seq2SeqHandler

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

PLACEHOLDER = "<image>"
STATE_FILE = "vision_language.json"
PROJECTOR_FILE = "projector.safetensors"
VISION_DIR = "vision"


class VisionLanguageHandler(Seq2SeqHandler):
    task_profile = "vision_language"
    vision_settings: dict[str, Any] = VISION_DEFAULTS
    merge = MERGE

    def __init__(self) -> None:
        super().__init__()
        self.image_processor: Any = None
        self.image_tokens = _tokens_per_image(self.vision_settings, self.merge)
        self._pixels: dict[str, Any] = {}  # path -> [3, S, S] array; many rows share an image
        self.skipped: list[str] = []  # rows left out, with why

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        # the PIL backend: the default one needs torchvision, which this project does not use
        from transformers import ViTImageProcessorPil

        super().setup(model_path, train_rows, config)
        size = self.vision_settings["image_size"]
        self.image_processor = ViTImageProcessorPil(
            do_resize=True, size={"height": size, "width": size},
            image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        )

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        # seeded inside: the ViT and projector init that follows is part of the run
        lm = load_causal_lm(self.model_path, config, self.lora_targets)
        hidden = lm.config.hidden_size
        model = build_vision_language(lm, hidden, self.vision_settings, self.merge)
        for part in (model.vision, model.projector):
            part.requires_grad_(True)
        return model

    # ---- data ---------------------------------------------------------------------------
    def pixels(self, path: str) -> Any:
        """[3, S, S] float32 array for an image file (cached per path)."""
        if path not in self._pixels:
            from PIL import Image

            with Image.open(path) as image:
                rgb = image.convert("RGB")
            self._pixels[path] = self.image_processor(rgb, return_tensors="np")["pixel_values"][0]
        return self._pixels[path]

    def _placed(self, record: dict) -> dict | None:
        """The record with one placeholder per image, or None if it has too many."""
        images = list(record.get("images") or [])
        messages = [dict(m) for m in record.get("messages") or []]
        found = sum(str(m.get("content", "")).count(PLACEHOLDER) for m in messages)
        if found > len(images):
            return None
        if found < len(images):
            users = [m for m in messages if m.get("role") == "user"]
            if not users:
                return None
            users[0]["content"] = PLACEHOLDER * (len(images) - found) + str(users[0]["content"])
        return {"images": images, "messages": messages}

    def _encode_pieces(self, per_row: list[list[tuple[str, bool]] | None], images: list[list[str]]
                       ) -> list[Example | None]:
        """Pieces (text, supervised) -> examples; each placeholder becomes image slots."""
        flat: list[str] = []
        for pieces in per_row:
            for text, _ in pieces or []:
                flat.extend(text.split(PLACEHOLDER))
        ids = self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        filler = self.tokenizer.pad_token_id
        out: list[Example | None] = []
        k = 0
        for pieces, paths in zip(per_row, images, strict=True):
            if pieces is None:
                out.append(None)
                continue
            tokens: list[int] = []
            supervised: list[bool] = []
            slots: list[int] = []
            for text, sup in pieces:
                for j in range(len(text.split(PLACEHOLDER))):
                    if j:  # an image: slots carry no loss, their embeddings are replaced
                        slots.extend(range(len(tokens), len(tokens) + self.image_tokens))
                        tokens.extend([filler] * self.image_tokens)
                        supervised.extend([False] * self.image_tokens)
                    tokens.extend(ids[k])
                    supervised.extend([sup] * len(ids[k]))
                    k += 1
            if slots and slots[-1] >= self.max_length:
                out.append(None)  # an image cut by truncation would leave half its patches
                self.skipped.append(f"image slots do not fit in max_length {self.max_length}")
                continue
            tokens, supervised = tokens[: self.max_length], supervised[: self.max_length]
            target = [tokens[t + 1] if supervised[t + 1] else IGNORE for t in range(len(tokens) - 1)]
            target.append(IGNORE)
            out.append(Example(tokens, target, {"images": paths, "slots": slots}))
        return out

    def _load_images(self, examples: list[Example | None]) -> list[Example | None]:
        out: list[Example | None] = []
        for e in examples:
            if e is None:
                out.append(None)
                continue
            try:
                for path in e.extra["images"]:
                    self.pixels(path)
            except (OSError, ValueError) as exc:  # missing or unreadable image: skip the row
                self.skipped.append(f"{exc}")
                out.append(None)
                continue
            out.append(e)
        return out

    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        placed = [self._placed(r["record"]) for r in rows]
        per_row = [self._pieces(p) if p else None for p in placed]
        images = [p["images"] if p else [] for p in placed]
        out = self._encode_pieces(per_row, images)
        # a row with nothing to learn (no assistant tokens) is of no use for training
        out = [e if e is not None and any(t != IGNORE for t in e.target) else None for e in out]
        return self._load_images(out)

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import numpy as np
        import torch

        rows, groups = lay_out(examples, self.tokenizer.pad_token_id, packing, self.pack_length)
        target = torch.full_like(rows.input_ids, IGNORE)
        image_mask = torch.zeros_like(rows.input_ids, dtype=torch.bool)
        pixels: list[Any] = []
        for r, group in enumerate(groups):
            at = 0
            for i in group:  # images in the order their slots appear, row by row
                e = examples[i]
                target[r, at : at + e.length] = torch.as_tensor(e.target)
                if e.extra["slots"]:
                    image_mask[r, torch.as_tensor(e.extra["slots"]) + at] = True
                pixels.extend(self.pixels(p) for p in e.extra["images"])
                at += e.length
        size = self.vision_settings["image_size"]
        return {
            "input_ids": rows.input_ids,
            "position_ids": rows.position_ids,
            "target": target,
            "image_mask": image_mask,
            "pixel_values": torch.from_numpy(np.stack(pixels)) if pixels
            else torch.zeros((0, 3, size, size)),
            "n_examples": len(examples),
            "tokens": rows.tokens,
            "real_tokens": rows.real_tokens,
        }

    # ---- training -----------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        embeds = model.embed(batch["input_ids"], batch["image_mask"], batch["pixel_values"])
        hidden = model.lm.get_decoder()(
            inputs_embeds=embeds, position_ids=batch["position_ids"], use_cache=False
        ).last_hidden_state
        keep = batch["target"] != IGNORE
        logits = model.lm.get_output_embeddings()(hidden[keep])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["target"][keep], reduction="sum")
        return loss, int(keep.sum())

    def _prompts(self, rows: Sequence[dict]) -> tuple[list[Example | None], list[str]]:
        """Per row: the prompt up to its last assistant turn (as an example) and that answer."""
        per_row: list[list[tuple[str, bool]] | None] = []
        images: list[list[str]] = []
        answers: list[str] = []
        for row in rows:
            placed = self._placed(row["record"])
            turns = placed["messages"] if placed else []
            last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=-1)
            if last < 1:
                per_row.append(None)
                images.append([])
                answers.append("")
                continue
            prompt = self.tokenizer.apply_chat_template(
                turns[:last], tokenize=False, add_generation_prompt=True
            )
            per_row.append([(prompt, False)])
            used = sum(str(m["content"]).count(PLACEHOLDER) for m in turns[:last])
            images.append(placed["images"][:used])
            answers.append(str(turns[last]["content"]))
        return self._load_images(self._encode_pieces(per_row, images)), answers

    def generate_answers(self, model: torch.nn.Module, prompts: Sequence[Example],
                         max_new_tokens: int = 16, batch_size: int = 8) -> list[str]:
        """Greedy continuations of prompt examples, left-padded batches."""
        import torch

        pad = self.tokenizer.pad_token_id
        out: list[str] = []
        with evaluating(model):
            device = device_of(model)
            for i in range(0, len(prompts), batch_size):
                chunk = list(prompts[i : i + batch_size])
                width = max(e.length for e in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                image_mask = torch.zeros((len(chunk), width), dtype=torch.bool)
                pixels: list[Any] = []
                for r, e in enumerate(chunk):
                    at = width - e.length
                    ids[r, at:] = torch.as_tensor(e.input_ids)
                    mask[r, at:] = 1
                    if e.extra["slots"]:
                        image_mask[r, torch.as_tensor(e.extra["slots"]) + at] = True
                    pixels.extend(torch.from_numpy(self.pixels(p)) for p in e.extra["images"])
                pixel_values = torch.stack(pixels).to(device) if pixels else None
                embeds = model.embed(ids.to(device), image_mask.to(device), pixel_values)
                new = model.lm.generate(
                    inputs_embeds=embeds, attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                )
                out.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return [text.strip() for text in out]

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False,
              generate_rows: int | None = None) -> dict[str, Any]:
        """Teacher-forced loss, then exact match / token F1 of greedy answers to the last user
        turn, and sacrebleu/rouge-score text metrics of the same answers."""
        from .seq2seq import text_metrics

        examples = [e for e in self.encode(rows) if e is not None]
        if not examples:
            return {"n": 0, "notes": [RANDOM_INIT_NOTE]}
        total, count = 0.0, 0
        with evaluating(model):
            for i in range(0, len(examples), 8):
                batch = to_device(self.collate(examples[i : i + 8], True), device_of(model))
                loss, n = self.loss(model, batch)
                total, count = total + float(loss), count + n
        prompts, answers = self._prompts(rows)
        kept = [(i, p, a) for i, (p, a) in enumerate(zip(prompts, answers, strict=True)) if p is not None]
        index = [i for i, _, _ in kept]
        kept = [(p, a) for _, p, a in kept]
        longest = max((len(self.tokenizer(a)["input_ids"]) for _, a in kept), default=0)
        generated = self.generate_answers(model, [p for p, _ in kept],
                                          max_new_tokens=min(64, longest + 4))
        golds = [a for _, a in kept]
        n = max(len(kept), 1)
        out = {
            "n": len(examples),
            "eval_loss": total / max(count, 1),
            "answered": len(kept),
            "exact_match": sum(exact_match(p, g) for p, g in zip(generated, golds, strict=True)) / n,
            "token_f1": sum(token_f1(p, g) for p, g in zip(generated, golds, strict=True)) / n,
            "samples": [{"answer": a, "generated": g} for a, g in
                        zip(golds[:5], generated[:5], strict=True)],
            "notes": [RANDOM_INIT_NOTE],
            **(text_metrics(generated, golds) if golds else {}),
        }
        if per_example:
            out["per_example"] = [
                {"index": i, "gold": g, "prediction": p, "token_f1": token_f1(p, g),
                 "correct": bool(exact_match(p, g))}
                for i, p, g in zip(index, generated, golds, strict=True)
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        """The language model (adapter or full), the trained ViT and the projector."""
        from transformers import ViTImageProcessorPil, ViTModel

        from .restore import RestoreError, eval_ready, load_tensors, rebuild

        self.vision_settings = dict(state.get("vision") or self.vision_settings)
        self.merge = int(state.get("merge", self.merge))
        self.image_tokens = int(state.get("tokens_per_image", self.image_tokens))
        vision_dir = weights_dir / VISION_DIR
        if not vision_dir.is_dir():
            raise RestoreError(f"{vision_dir} is missing: the run did not finish saving; train it again")
        self.model_path = Path(base_path)
        self.tokenizer = causal_tokenizer(weights_dir)
        self.max_length = int(state.get("max_length", config.max_length))
        self.pack_length = config.pack_length
        self.image_processor = ViTImageProcessorPil.from_pretrained(vision_dir)
        model = rebuild(self, config, self.model_path, weights_dir, adapter_of=lambda m: m.lm)
        trained = ViTModel.from_pretrained(vision_dir, add_pooling_layer=False)
        model.vision.load_state_dict(trained.state_dict(), strict=True)
        load_tensors(model.projector, weights_dir / PROJECTOR_FILE)
        return eval_ready(model)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict],
                     max_new_tokens: int = 32) -> list[dict[str, Any]]:
        """The answer to each row's last user turn about its images."""
        chats = []
        for row in rows:
            record = dict(row["record"])
            messages = list(record.get("messages") or [])
            while messages and messages[-1].get("role") == "assistant":
                messages = messages[:-1]
            chats.append({"record": {**record, "messages": [*messages,
                                                           {"role": "assistant", "content": ""}]}})
        prompts, _ = self._prompts(chats)
        live = [i for i, p in enumerate(prompts) if p is not None]
        texts = self.generate_answers(model, [prompts[i] for i in live], max_new_tokens) if live else []
        out: list[dict[str, Any]] = [{"text": None, "error": "no user turn, or an image could not be read"}
                                     for _ in rows]
        for i, text in zip(live, texts, strict=True):
            out[i] = {"text": text}
        return out

    # ---- output -------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        model.lm.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        model.vision.save_pretrained(out_dir / VISION_DIR, safe_serialization=True)
        self.image_processor.save_pretrained(out_dir / VISION_DIR)
        projector = {k: v.detach().contiguous().cpu() for k, v in model.projector.state_dict().items()}
        save_file(projector, str(out_dir / PROJECTOR_FILE))
        (out_dir / STATE_FILE).write_text(json.dumps(self.state(), indent=2), encoding="utf-8")

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "vision_encoder": "vit, randomly initialised",
            "vision": dict(self.vision_settings),
            "merge": self.merge,
            "tokens_per_image": self.image_tokens,
            "image_preprocessing": "RGB, resized square, mean/std 0.5",
            "notes": [RANDOM_INIT_NOTE],
        }
