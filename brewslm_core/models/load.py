"""Load tokenizers and models for a ModelRef: offline, safetensors only, no remote code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import Registry
from .ref import ModelNotAvailableError, ModelRef
from .resolve import OFFLINE_DEFAULTS_HINT

# Task name -> transformers Auto class. Task profiles are accepted too (see _task_name).
AUTO_CLASSES: Registry[str] = Registry("model task")
for _task, _cls in {
    "embedding": "AutoModel",
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
    "question_answering": "AutoModelForQuestionAnswering",
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq_lm": "AutoModelForSeq2SeqLM",
    "speech_seq2seq": "AutoModelForSpeechSeq2Seq",
}.items():
    AUTO_CLASSES.register(_task)(_cls)

# Task profile -> task; generative profiles follow the model's kind.
PROFILE_TASKS: dict[str, str] = {
    "classification": "sequence_classification",
    "safety": "sequence_classification",
    "qa": "question_answering",
    "structured_extraction": "token_classification",
    "audio_transcription": "speech_seq2seq",
}
GENERATIVE_PROFILES = ("seq2seq", "alignment", "rag", "vision_language")


def _task_name(task: str, ref: ModelRef) -> str:
    if task in PROFILE_TASKS:
        return PROFILE_TASKS[task]
    if task in GENERATIVE_PROFILES:
        return "seq2seq_lm" if ref.kind == "seq2seq_lm" else "causal_lm"
    return task


def materialize(ref: ModelRef) -> str:
    """A loadable location for ``ref``: converts smollm2/whisper into the cache on first use."""
    if ref.family == "smollm2":
        from .smollm2 import ensure_converted

        return str(ensure_converted(Path(ref.path)))
    if ref.family == "whisper":
        from .whisper import ensure_converted as ensure_whisper

        return str(ensure_whisper(Path(ref.path)))
    if ref.source in ("package", "local") and not Path(ref.path).is_dir():
        raise ModelNotAvailableError(f"model folder {ref.path} is missing")
    return ref.path


def _load_error(ref: ModelRef, exc: OSError) -> ModelNotAvailableError:
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return ModelNotAvailableError(
        f"cannot load base model {ref.name!r} from {ref.path}: {reason}. Weights must be "
        f"safetensors, and offline only cached models load; {OFFLINE_DEFAULTS_HINT}"
    )


def _safe_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("trust_remote_code"):
        raise ValueError("trust_remote_code=True is not allowed: base models run no hub code")
    if kwargs.get("use_safetensors") is False:
        raise ValueError("use_safetensors=False is not allowed: weights load from safetensors")
    return {**kwargs, "trust_remote_code": False}


def load_tokenizer(ref: ModelRef, **kwargs: Any) -> Any:
    """The tokenizer (text models) or processor (speech models) for ``ref``, offline."""
    from transformers import AutoProcessor, AutoTokenizer

    location = materialize(ref)
    loader = AutoProcessor if ref.kind == "speech_seq2seq" else AutoTokenizer
    try:
        tokenizer = loader.from_pretrained(location, **_safe_kwargs(kwargs))
    except OSError as exc:
        raise _load_error(ref, exc) from exc
    # Batches need a pad token; decoder-only models often ship without one (pad = eos is the
    # usual choice, and what SmolLM2 itself uses).
    if ref.kind == "causal_lm" and tokenizer.pad_token is None and tokenizer.eos_token:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: ModelRef, *, task: str, **kwargs: Any) -> Any:
    """``AutoModelFor…`` for ``task`` (a task name from AUTO_CLASSES or a task profile).

    Extra keyword arguments go to ``from_pretrained`` (num_labels, id2label, dtype, …).
    """
    import transformers

    auto_cls = getattr(transformers, AUTO_CLASSES.get(_task_name(task, ref)))
    location = materialize(ref)
    try:
        return auto_cls.from_pretrained(location, use_safetensors=True, **_safe_kwargs(kwargs))
    except OSError as exc:
        raise _load_error(ref, exc) from exc
