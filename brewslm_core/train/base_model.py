"""Find the folder of the base model. The models package owns this; we only ask it."""

from __future__ import annotations

from pathlib import Path


def resolve_model_path(base: str, task_profile: str) -> Path:
    """A local Hugging Face folder for ``base`` ("auto" = the profile's offline default).

    Converted defaults (SmolLM2 from GGUF) are built into the user cache on first use.
    """
    from ..models import materialize, resolve_base

    return Path(materialize(resolve_base(base, task_profile)))
