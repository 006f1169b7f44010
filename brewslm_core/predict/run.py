"""``predict(project, run_id, inputs)``: the task's natural output for new inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .load import LoadedRun, load_run

if TYPE_CHECKING:
    from ..project import Project

# what a bare string means per task (the record key it fills)
TEXT_KEY: dict[str, str] = {
    "classification": "text",
    "safety": "text",
    "structured_extraction": "text",
    "rag": "question",
    "audio_transcription": "audio",  # a path to a WAV file
    "alignment": "prompt",
}
NEEDS_RECORD: dict[str, str] = {
    "qa": '{"question": ..., "context": ...}',
    "vision_language": '{"images": [PATH], "messages": [{"role": "user", "content": "<image>..."}]}',
}


class PredictInputError(ValueError):
    """An input the task cannot take; the message shows the record form it needs."""


def as_rows(task_profile: str, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Inputs (strings or records, or ``{"record": …}`` rows) as the rows handlers read."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, item in enumerate(inputs):
        if isinstance(item, dict):
            record = item["record"] if isinstance(item.get("record"), dict) else item
            rows.append({"record": dict(record)})
        elif isinstance(item, str):
            if task_profile == "seq2seq":
                rows.append({"record": {"messages": [{"role": "user", "content": item}]}})
            elif task_profile in TEXT_KEY:
                rows.append({"record": {TEXT_KEY[task_profile]: item}})
            else:
                form = NEEDS_RECORD.get(task_profile, "(dict)")
                problems.append(f"input {i}: a {task_profile} input is a record {form}, not a bare string")
        else:
            problems.append(f"input {i}: expected a string or a record (dict), got {type(item).__name__}")
    if problems:
        raise PredictInputError("cannot predict:\n- " + "\n- ".join(problems))
    return rows


def predict_loaded(loaded: LoadedRun, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Predictions with an already loaded run (keep one LoadedRun for many calls)."""
    import torch

    rows = as_rows(loaded.task_profile, inputs)
    if not rows:
        return []
    with torch.no_grad():
        return loaded.handler.predict_rows(loaded.model, rows)


def predict(project: Project, run_id: str, inputs: Sequence[Any], device: str = "cpu"
            ) -> list[dict[str, Any]]:
    """Load ``run_id`` and predict ``inputs``: label + scores, spans, answer with evidence,
    generated text or transcript, one dict per input."""
    if isinstance(inputs, str):
        inputs = [inputs]
    return predict_loaded(load_run(project, run_id, device=device), inputs)
