"""resolve_base, cache_dir and the build-once helper: fast, no model weights loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from brewslm_core.contracts.reasons import TASK_PROFILES
from brewslm_core.models import ModelNotAvailableError, ModelRef, cache_dir, resolve_base
from brewslm_core.models.build import MARKER, build_once, is_built, read_marker
from brewslm_core.registry import UnknownNameError

REPO = Path(__file__).resolve().parents[1]

EXPECTED = {
    "classification": ("minilm", "encoder"),
    "safety": ("minilm", "encoder"),
    "qa": ("minilm", "encoder"),
    "structured_extraction": ("minilm", "encoder"),
    "seq2seq": ("smollm2", "causal_lm"),
    "alignment": ("smollm2", "causal_lm"),
    "rag": ("smollm2", "causal_lm"),
    "vision_language": ("smollm2", "causal_lm"),
    "audio_transcription": ("whisper", "speech_seq2seq"),
}


@pytest.fixture()
def private_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("BREWSLM_CACHE_DIR", str(folder))
    return folder


def test_every_task_profile_has_an_auto_default():
    assert set(EXPECTED) == set(TASK_PROFILES)


@pytest.mark.parametrize("profile", TASK_PROFILES)
def test_auto_resolves_per_profile(profile, private_cache):
    ref = resolve_base("auto", profile)
    family, kind = EXPECTED[profile]
    assert (ref.family, ref.kind) == (family, kind)
    if family == "minilm":
        assert ref.source == "package"
        assert (Path(ref.path) / "model.safetensors").is_file()
    else:  # converted families live in the cache, never in the repo
        assert ref.source == "cache"
        assert Path(ref.path).parent == private_cache
    assert ModelRef(**ref.to_dict()) == ref


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("minilm", "minilm"),
        ("MiniLM", "minilm"),
        ("sentence-transformers/all-MiniLM-L6-v2", "minilm"),
        ("smollm2", "smollm2"),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2"),
        ("whisper-tiny.en", "whisper"),
        ("openai/whisper-tiny.en", "whisper"),
    ],
)
def test_aliases_name_the_offline_defaults(name, family):
    assert resolve_base(name, "classification").family == family


def test_unknown_profile_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'classification'"):
        resolve_base("auto", "clasification")


def test_local_folder_is_read_for_its_kind(tmp_path):
    minilm = Path(resolve_base("minilm").path)
    ref = resolve_base(str(minilm), "classification")
    assert (ref.family, ref.kind, ref.source) == ("hf", "encoder", "local")
    assert Path(ref.path) == minilm.resolve()

    # a causal LM config in a folder of our own
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    ref = resolve_base(str(folder), "seq2seq")
    assert (ref.kind, ref.source, ref.name) == ("causal_lm", "local", "tiny-llama")


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        resolve_base(str(tmp_path), "classification")


def test_unknown_hub_id_offline_names_the_defaults():
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_base("brewslm-tests/no-such-model", "seq2seq")
    message = str(err.value)
    assert "not cached" in message and "offline" in message
    assert "'smollm2'" in message and "'minilm'" in message


def test_unreachable_hub_model_fails_to_load_clearly():
    from brewslm_core.models import load_model, load_tokenizer

    ref = ModelRef(name="brewslm-tests/no-such-model", family="hf", kind="causal_lm",
                   path="brewslm-tests/no-such-model", source="hub")
    with pytest.raises(ModelNotAvailableError, match="offline only cached models load"):
        load_tokenizer(ref)
    with pytest.raises(ModelNotAvailableError, match="'whisper-tiny.en'"):
        load_model(ref, task="causal_lm")


def test_unknown_task_suggests_the_closest():
    from brewslm_core.models import load_model

    with pytest.raises(UnknownNameError, match="did you mean 'causal_lm'"):
        load_model(resolve_base("minilm"), task="casual_lm")


def test_cache_dir_honours_env_and_stays_out_of_the_repo(private_cache, monkeypatch):
    assert cache_dir() == private_cache and private_cache.is_dir()
    monkeypatch.delenv("BREWSLM_CACHE_DIR")
    assert REPO not in cache_dir().resolve().parents


def _write_one(folder: Path) -> dict:
    (folder / "weights.txt").write_text("w")
    return {"note": "built"}


def test_build_once_builds_then_reuses(tmp_path):
    target = tmp_path / "m"
    calls = []

    def builder(folder: Path) -> dict:
        calls.append(folder)
        return _write_one(folder)

    assert build_once(target, 1, builder) == target
    assert (target / "weights.txt").read_text() == "w"
    assert read_marker(target)["note"] == "built"
    build_once(target, 1, builder)
    assert len(calls) == 1
    build_once(target, 2, builder)  # a new conversion version rebuilds
    assert len(calls) == 2 and read_marker(target)["version"] == 2
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_build_failure_leaves_nothing_that_looks_finished(tmp_path):
    target = tmp_path / "m"

    def broken(folder: Path) -> dict:
        (folder / "half.bin").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, 1, broken)
    assert not target.exists() and not is_built(target, 1)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_two_processes_convert_only_once(tmp_path):
    target = tmp_path / "m"
    counter = tmp_path / "count.txt"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from brewslm_core.models.build import build_once\n"
        "def build(folder):\n"
        "    with open(sys.argv[2], 'a') as f: f.write('x')\n"
        "    time.sleep(1.0)\n"
        "    (folder / 'w').write_text('w'); return {}\n"
        "build_once(Path(sys.argv[1]), 1, build)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(target), str(counter)], cwd=REPO)
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert counter.read_text() == "x"
    assert (target / MARKER).is_file()
