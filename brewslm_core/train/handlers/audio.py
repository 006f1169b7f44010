"""Speech to text: fine-tune Whisper (default whisper tiny.en) on ``{"audio", "text"}`` rows.

Audio is read from WAV (any rate; resampled polyphase to 16 kHz) with ``pad_seconds`` of silence
on each side, because whisper hears bare, tightly trimmed words badly. The log-mel features are
computed per micro-batch (a 30 s window is ~1 MB per clip, too much to hold for a whole data
set); the examples keep only the waveform.

Decoder rows are ``<|startoftranscript|><|notimestamps|> text<|endoftext|>``. The two prompt
tokens are forced at generation time, so the loss is taken only on the text tokens and the end
token. The transcript gets one leading space, the form whisper writes text in.

``score()`` transcribes greedily and reports WER and CER (``jiwer``) after ``normalise``: lower
case, punctuation removed, and digits spelled as words one digit at a time ("7" -> "seven",
"42" -> "four two", the way digit strings such as codes or phone numbers are read), so a model
that writes "7." is not counted wrong against the transcript "seven".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import IGNORE, Example, HandlerHooks, lay_out
from .encoder_tools import device_of, evaluating, to_device
from .lora import adapt

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

STATE_FILE = "transcription.json"
DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
_NOT_WORD = re.compile(r"[^\w\s']|_")
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """Transcript form both sides are compared in (see the module docs)."""
    text = _DIGITS.sub(lambda m: " " + " ".join(DIGIT_WORDS[int(d)] for d in m.group()) + " ",
                       text.lower())
    text = _NOT_WORD.sub(" ", text).replace("'", "")
    return " ".join(text.split())


class AudioTranscriptHandler(HandlerHooks):
    task_profile = "audio_transcription"
    # LoRA on the attention query/value projections of encoder and decoder
    lora_targets: Any = ("q_proj", "v_proj")
    pad_seconds = 0.5

    def __init__(self) -> None:
        self.processor: Any = None
        self.model_path: Path | None = None
        self.max_length = 128
        self.sampling_rate = 16_000
        self.skipped: list[str] = []  # rows whose audio could not be read, with why

    # ---- setup --------------------------------------------------------------------------
    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        from transformers import WhisperProcessor

        self.model_path = Path(model_path)
        try:
            self.processor = WhisperProcessor.from_pretrained(self.model_path)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(
                f"{self.model_path} is not a Whisper model folder (no processor: {exc}); use "
                "base='auto' (whisper tiny.en) or a folder saved with WhisperProcessor"
            ) from exc
        self.processor.tokenizer.set_prefix_tokens(predict_timestamps=False)
        self.sampling_rate = int(self.processor.feature_extractor.sampling_rate)
        self.max_length = config.max_length

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        import torch
        from transformers import WhisperForConditionalGeneration

        torch.manual_seed(config.seed)
        model = WhisperForConditionalGeneration.from_pretrained(
            self.model_path, attn_implementation="sdpa", dtype=torch.float32
        )
        model.config.use_cache = False
        return adapt(model, config, self.lora_targets)

    # ---- data ---------------------------------------------------------------------------
    def read(self, path: str | Path) -> Any:
        from ...models import read_audio

        return read_audio(path, self.sampling_rate, pad_seconds=self.pad_seconds)

    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        texts = [str(r["record"].get("text") or "").strip() for r in rows]
        ids = self.tokenizer([" " + t for t in texts])["input_ids"] if texts else []
        n_prompt = len(self.tokenizer.prefix_tokens)
        out: list[Example | None] = []
        for row, text, tokens in zip(rows, texts, ids, strict=True):
            tokens = list(tokens)[: self.max_length]
            path = row["record"].get("audio")
            if not text or not path or len(tokens) <= n_prompt + 1:
                out.append(None)  # no transcript, or nothing to hear
                continue
            try:
                wave = self.read(path)
            except (OSError, ValueError) as exc:  # missing or unreadable file: skip the row
                out.append(None)
                self.skipped.append(f"{path}: {exc}")
                continue
            # next-token targets; the forced prompt tokens are not predicted
            target = [t if k + 1 >= n_prompt else IGNORE for k, t in enumerate(tokens[1:])]
            target.append(IGNORE)
            out.append(Example(tokens, target, {"audio": wave}))
        return out

    def features(self, waves: Sequence[Any]) -> torch.Tensor:
        """Log-mel features, padded to whisper's 30 s window: [batch, mels, 3000]."""
        return self.processor.feature_extractor(
            list(waves), sampling_rate=self.sampling_rate, return_tensors="pt"
        ).input_features

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        import torch

        # one clip per decoder row: the audio cannot be shared, so there is no packing here.
        # Right padding needs no mask: a causal decoder never looks forward at it.
        pad = self.tokenizer.pad_token_id
        rows, _ = lay_out(examples, self.tokenizer.eos_token_id if pad is None else pad, False)
        target = torch.full_like(rows.input_ids, IGNORE)
        for r, e in enumerate(examples):
            target[r, : e.length] = torch.as_tensor(e.target)
        return {
            "input_features": self.features([e.extra["audio"] for e in examples]),
            "input_ids": rows.input_ids,
            "target": target,
            "n_examples": len(examples),
            "tokens": rows.tokens,  # decoder tokens; every clip also costs one 30 s encoder pass
            "real_tokens": rows.real_tokens,
        }

    # ---- training -----------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        import torch

        logits = model(
            input_features=batch["input_features"],
            decoder_input_ids=batch["input_ids"],
            use_cache=False,
        ).logits
        keep = batch["target"] != IGNORE
        loss = torch.nn.functional.cross_entropy(
            logits[keep].float(), batch["target"][keep], reduction="sum"
        )
        return loss, int(keep.sum())

    def transcribe(
        self, model: torch.nn.Module, waves: Sequence[Any], max_new_tokens: int = 64,
        batch_size: int = 8,
    ) -> list[str]:
        """Greedy transcripts of waveforms (16 kHz float32, as ``read`` gives them)."""
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        out: list[str] = []
        with evaluating(model):
            for i in range(0, len(waves), batch_size):
                feats = self.features(waves[i : i + batch_size]).to(device_of(model))
                ids = core.generate(input_features=feats, max_new_tokens=max_new_tokens,
                                    do_sample=False)
                out.extend(self.tokenizer.batch_decode(ids, skip_special_tokens=True))
        return [t.strip() for t in out]

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        """WER and CER (jiwer) of greedy transcripts after ``normalise``, plus the loss."""
        import jiwer

        examples = self.encode(rows)
        kept = [(r, e) for r, e in zip(rows, examples, strict=True) if e is not None]
        if not kept:
            return {"n": 0, "skipped": len(rows)}
        total, count = 0.0, 0
        with evaluating(model):
            for i in range(0, len(kept), 8):
                batch = self.collate([e for _, e in kept[i : i + 8]], False)
                loss, n = self.loss(model, to_device(batch, device_of(model)))
                total, count = total + float(loss), count + n
        longest = max(e.length for _, e in kept)
        hyps = self.transcribe(model, [e.extra["audio"] for _, e in kept],
                               max_new_tokens=min(self.max_length, longest + 8))
        refs = [normalise(str(r["record"]["text"])) for r, _ in kept]
        norm = [normalise(h) for h in hyps]
        # jiwer refuses empty references; an empty hypothesis is a full deletion
        pairs = [(r, h) for r, h in zip(refs, norm, strict=True) if r]
        if not pairs:
            return {"n": 0, "skipped": len(rows)}
        out = {
            "n": len(kept),
            "skipped": len(rows) - len(kept),
            "eval_loss": total / max(count, 1),
            "wer": float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])),
            "cer": float(jiwer.cer([r for r, _ in pairs], [h for _, h in pairs])),
            "exact_match": sum(r == h for r, h in pairs) / len(pairs),
            "samples": [{"reference": r, "transcript": h} for r, h in
                        zip(refs[:5], hyps[:5], strict=True)],
        }
        if per_example:
            index = {id(r): i for i, r in enumerate(rows)}
            out["per_example"] = [
                {"index": index[id(row)], "gold": ref, "prediction": hyp,
                 "wer": float(jiwer.wer(ref, normalise(hyp))) if ref else None,
                 "correct": ref == normalise(hyp)}
                for (row, _), ref, hyp in zip(kept, refs, hyps, strict=True)
            ]
        return out

    # ---- loading and prediction ---------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        from transformers import WhisperProcessor

        from .restore import eval_ready, rebuild

        self.model_path = Path(base_path)
        self.processor = WhisperProcessor.from_pretrained(weights_dir)
        self.processor.tokenizer.set_prefix_tokens(predict_timestamps=False)
        self.sampling_rate = int(state.get("sampling_rate", self.sampling_rate))
        self.pad_seconds = float(state.get("pad_seconds", self.pad_seconds))
        self.max_length = int(state.get("max_length", config.max_length))
        return eval_ready(rebuild(self, config, self.model_path, weights_dir))

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """The transcript of each row's ``audio`` file (a row whose file cannot be read gets
        ``transcript`` None and the error)."""
        out: list[dict[str, Any]] = [{} for _ in rows]
        waves, where = [], []
        for i, row in enumerate(rows):
            try:
                waves.append(self.read(row["record"]["audio"]))
                where.append(i)
            except (OSError, ValueError, KeyError) as exc:
                out[i] = {"transcript": None, "error": f"{type(exc).__name__}: {exc}"}
        for i, text in zip(where, self.transcribe(model, waves, self.max_length) if waves else [],
                           strict=True):
            out[i] = {"transcript": text, "normalised": normalise(text)}
        return out

    # ---- output -------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        self.processor.save_pretrained(out_dir)
        (out_dir / STATE_FILE).write_text(json.dumps(self.state(), indent=2), encoding="utf-8")

    def state(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "sampling_rate": self.sampling_rate,
            "pad_seconds": self.pad_seconds,
            "loss_on": "transcript_tokens",
            "normalisation": "lower case, no punctuation, digits spelled one by one",
        }
