"""whisper tiny.en converted from the shipped CTranslate2 files transcribes spoken digits (FSDD)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from brewslm_core.models import ModelRef, load_model, load_tokenizer, materialize, resolve_base
from brewslm_core.models.build import MARKER
from brewslm_core.models.whisper import SAMPLING_RATE, ct2_dir, ensure_converted

pytestmark = pytest.mark.slow

DIGITS = "zero one two three four five six seven eight nine".split()
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
# Measured on these 20 clips, greedy decoding, 0.5 s silence padding: WER 0.40, 14 of 20 exact
# (unpadded: WER 0.50, 11 exact). FSDD clips are 8 kHz and trimmed to the word; tiny.en hears
# some bare words as "bye"/"please". Bounds leave a margin for BLAS differences between CPUs.
WER_BOUND = 0.55
MIN_EXACT = 11
PAD_SECONDS = 0.5


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """A fresh conversion into a private folder, so the converter itself runs on every test run."""
    import torch

    torch.set_num_threads(2)
    folder = ensure_converted(tmp_path_factory.mktemp("cache") / "whisper")
    ref = ModelRef(name="whisper", family="hf", path=str(folder), kind="speech_seq2seq",
                   source="local")
    return load_tokenizer(ref), load_model(ref, task="audio_transcription").eval()


def _clips(shared_data: Path) -> list[tuple[Path, str]]:
    """20 clips spread over all speakers and digits (fixed, so the WER bound stays meaningful)."""
    out = []
    for k in range(20):
        digit, speaker, index = k % 10, SPEAKERS[k % len(SPEAKERS)], k // 10
        out.append((shared_data / "audio_fsdd" / "recordings" / f"{digit}_{speaker}_{index}.wav",
                    DIGITS[digit]))
    return out


def normalise(text: str) -> str:
    """Lower-case, drop punctuation, spell single digits ("7" -> "seven")."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(DIGITS[int(w)] if w.isdigit() and len(w) == 1 else w for w in words)


def test_normalise_spells_digits():
    assert normalise(" 7.") == "seven" and normalise("Zero!") == "zero"


def test_transcribes_spoken_digits(whisper, shared_data):
    import jiwer
    import torch

    from brewslm_core.models.whisper import read_audio

    processor, model = whisper
    clips = _clips(shared_data)
    audio = [read_audio(path, pad_seconds=PAD_SECONDS) for path, _ in clips]
    assert all(a.dtype.name == "float32" and 0 < abs(a).max() <= 1.0 for a in audio)
    assert all(a[: int(PAD_SECONDS * SAMPLING_RATE)].max() == 0 for a in audio)
    features = processor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features, max_new_tokens=8)
    hyps = [normalise(t) for t in processor.batch_decode(ids, skip_special_tokens=True)]
    refs = [word for _, word in clips]
    wer = jiwer.wer(refs, hyps)
    exact = sum(h == r for h, r in zip(hyps, refs, strict=True))
    assert wer <= WER_BOUND, list(zip(refs, hyps, strict=True))
    assert exact >= MIN_EXACT, list(zip(refs, hyps, strict=True))


def test_tokenizer_agrees_with_the_shipped_one(whisper):
    from tokenizers import Tokenizer

    processor, model = whisper
    tokenizer = processor.tokenizer
    shipped = Tokenizer.from_file(str(ct2_dir() / "tokenizer.json"))
    text = " Seven, eight and nine o'clock."
    assert tokenizer(text)["input_ids"] == shipped.encode(text).ids  # same prefix/suffix too
    assert len(tokenizer) == model.config.vocab_size == 51864
    assert tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 50362
    assert tokenizer.convert_tokens_to_ids("<|0.00|>") == 50363
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") == 51863
    assert model.generation_config.no_timestamps_token_id == 50362
    assert model.generation_config.decoder_start_token_id == 50257


def test_folder_has_safetensors_and_a_conversion_record(whisper):
    processor, model = whisper
    folder = Path(model.name_or_path)
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))  # no pickle weights
    record = json.loads((folder / MARKER).read_text())
    assert record["spec"] == "WhisperSpec" and record["variables"] == 148


def test_default_ref_converts_once_into_the_cache():
    ref = resolve_base("auto", "audio_transcription")
    folder = Path(materialize(ref))
    assert folder == Path(ref.path)
    stamp = (folder / MARKER).stat().st_mtime_ns, (folder / "model.safetensors").stat().st_mtime_ns
    assert Path(materialize(ref)) == folder
    assert ((folder / MARKER).stat().st_mtime_ns,
            (folder / "model.safetensors").stat().st_mtime_ns) == stamp
