"""Offline base models: what the one-off conversions buy, and how fast the defaults run on CPU.

Baselines measured in the same run:
- SmolLM2: loading straight from the shipped GGUF (dequantise on every load) vs loading the
  converted safetensors folder from the cache.
- whisper tiny.en: converting the CTranslate2 file (what a cold cache costs) vs loading the
  converted folder; transcription speed as a real-time factor (audio seconds per CPU second).
- MiniLM: embedding throughput with dynamic padding vs padding every batch to 128 tokens.

    python -m benchmarks.bench_models [--audio-files 12] [--sentences 256] [--skip-gguf]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb

SHARED_DATA = Path(
    os.environ.get("BREWSLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def bench_smollm2(skip_gguf: bool) -> None:
    from brewslm_core.models import load_model, materialize, resolve_base
    from brewslm_core.models.build import read_marker
    from brewslm_core.models.smollm2 import load_gguf

    ref = resolve_base("smollm2")
    _, first = _timed(lambda: materialize(ref))  # converts only when the cache is cold
    marker = read_marker(Path(ref.path)) or {}
    print(f"smollm2: conversion took {marker.get('seconds')} s when it ran "
          f"(logits max-abs-diff {marker.get('logits_max_abs_diff')}); materialize now {first:.2f} s")
    _, cached = _timed(lambda: load_model(ref, task="causal_lm"))
    print(f"smollm2: load converted folder {cached:.2f} s")
    if not skip_gguf:
        _, gguf = _timed(load_gguf)
        print(f"smollm2: load from GGUF {gguf:.2f} s  -> cached load is {gguf / cached:.0f}x faster")


def bench_whisper(n_files: int) -> None:
    import torch

    from brewslm_core.models import load_model, load_tokenizer, resolve_base
    from brewslm_core.models.whisper import SAMPLING_RATE, read_audio

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BREWSLM_CACHE_DIR"] = tmp
        try:  # a cold private cache: conversion + first load
            ref = resolve_base("whisper-tiny.en")
            _, cold = _timed(lambda: (load_tokenizer(ref), load_model(ref, task="speech_seq2seq")))
            _, warm = _timed(lambda: (load_tokenizer(ref), load_model(ref, task="speech_seq2seq")))
        finally:
            del os.environ["BREWSLM_CACHE_DIR"]
    print(f"whisper: convert+load {cold:.2f} s, cached load {warm:.2f} s "
          f"-> cached is {cold / warm:.1f}x faster")

    ref = resolve_base("whisper-tiny.en")
    processor, model = load_tokenizer(ref), load_model(ref, task="speech_seq2seq").eval()
    files = sorted((SHARED_DATA / "audio_fsdd" / "recordings").glob("*.wav"))[::7][:n_files]
    audio = [read_audio(f) for f in files]
    seconds = sum(len(a) for a in audio) / SAMPLING_RATE
    features = processor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
    with torch.no_grad():
        _, took = _timed(lambda: model.generate(features, max_new_tokens=8))
    print(f"whisper: {len(files)} clips, {seconds:.1f} s of audio in {took:.2f} s "
          f"-> real-time factor {seconds / took:.2f} (clips are padded to 30 s windows: "
          f"{len(files) * 30 / took:.1f} window-seconds/s)")


def bench_minilm(n_sentences: int) -> None:
    import torch

    from brewslm_core.models import load_model, load_tokenizer, resolve_base

    with open(SHARED_DATA / "banking77" / "test.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:n_sentences]
    ref = resolve_base("minilm")
    (tokenizer, model), load = _timed(
        lambda: (load_tokenizer(ref), load_model(ref, task="embedding").eval())
    )

    def embed(padding: str | bool) -> None:
        for i in range(0, len(texts), 32):
            batch = tokenizer(texts[i : i + 32], padding=padding, truncation=True,
                              max_length=128, return_tensors="pt")
            with torch.no_grad():
                model(**batch)

    _, padded = _timed(lambda: embed("max_length"))
    _, dynamic = _timed(lambda: embed(True))
    print(f"minilm: load {load:.2f} s; {len(texts)} sentences: pad-to-128 "
          f"{len(texts) / padded:.0f}/s, dynamic {len(texts) / dynamic:.0f}/s "
          f"-> dynamic padding {padded / dynamic:.1f}x faster")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio-files", type=int, default=12)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--skip-gguf", action="store_true", help="skip the ~25 s GGUF baseline")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    bench_minilm(args.sentences)
    bench_whisper(args.audio_files)
    bench_smollm2(args.skip_gguf)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
