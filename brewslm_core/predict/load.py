"""Rebuild a trained run from its folder alone: ``runs/<id>/plan.json`` + ``runs/<id>/adapter/``.

The plan names the task profile, the train config (method lora/qlora/full, LoRA settings), the
handler's saved state (labels, max length, mode …) and the base model folder; the handler's
``restore`` rebuilds the model exactly as training built it and loads the saved tensors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..project import Project

GENERATIVE = ("seq2seq", "alignment", "rag")  # always a causal LM; qa/extraction when generative


class RunNotLoadable(RuntimeError):
    """The run folder is missing, unfinished, or does not match its plan; the message says why."""


@dataclass(frozen=True)
class LoadedRun:
    """A trained run ready to predict: the restored handler, its model (eval mode) and facts."""

    run_id: str
    task_profile: str
    handler: Any
    model: Any  # torch.nn.Module
    tokenizer: Any  # tokenizer, or the processor (audio)
    plan: dict[str, Any]
    weights_dir: Path
    base_model_path: Path
    device: str = "cpu"

    @property
    def method(self) -> str:
        return str(self.plan["config"].get("method", "lora"))

    @property
    def is_causal_lm(self) -> bool:
        """True when the model is a plain causal LM (possibly LoRA-wrapped)."""
        if self.task_profile in GENERATIVE:
            return True
        mode = self.plan.get("handler_state", {}).get("mode")
        return self.task_profile in ("qa", "structured_extraction") and mode in ("generative", "field_match")


def read_plan(project: Project, run_id: str) -> dict[str, Any]:
    run_dir = project.run_dir(run_id)
    path = run_dir / "plan.json"
    if not path.is_file():
        known = sorted(p.name for p in project.runs_dir.iterdir() if (p / "plan.json").is_file()) \
            if project.runs_dir.is_dir() else []
        raise RunNotLoadable(
            f"run {run_id!r} has no plan.json in {run_dir}; runs of this project: {known or 'none'}"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def base_model_path(plan: dict[str, Any]) -> Path:
    """The base model folder the run trained on; rebuilt from the config when it moved."""
    path = Path(plan.get("base_model_path") or "")
    if plan.get("base_model_path") and path.is_dir():
        return path
    from ..models import materialize, resolve_base

    cfg = plan["config"]
    return Path(materialize(resolve_base(cfg.get("base", "auto"), plan["task_profile"])))


def load_run(project: Project, run_id: str, device: str = "cpu") -> LoadedRun:
    """The trained model of ``run_id`` with its tokenizer/processor and restored handler."""
    import torch

    from ..train import TrainConfig, get_handler

    plan = read_plan(project, run_id)
    weights = project.run_dir(run_id) / "adapter"
    if not weights.is_dir():
        raise RunNotLoadable(
            f"run {run_id} has no adapter/ folder: it did not complete (see its training event "
            f"with `brewslm events {project.root} --run {run_id}`); train or resume it first"
        )
    config = dataclasses.replace(TrainConfig.from_dict(plan["config"]), device=device)
    handler = get_handler(plan["task_profile"])
    bind = getattr(handler, "bind", None)
    if callable(bind):  # the RAG corpus (and any other project file a handler reads)
        bind(project, project.run_dir(run_id))
    base = base_model_path(plan)
    model = handler.restore(base, weights, dict(plan.get("handler_state") or {}), config)
    if config.method != "qlora":  # a 4-bit model was placed on its device while loading
        model = model.to(torch.device(device))
    tokenizer = getattr(handler, "processor", None) or _tokenizer_of(handler)
    return LoadedRun(run_id=run_id, task_profile=plan["task_profile"], handler=handler, model=model,
                     tokenizer=tokenizer, plan=plan, weights_dir=weights, base_model_path=base,
                     device=device)


def _tokenizer_of(handler: Any) -> Any:
    for path in (("tokenizer",), ("generative", "sft", "tokenizer"), ("gen", "sft", "tokenizer")):
        obj = handler
        for name in path:
            obj = getattr(obj, name, None)
        if obj is not None:
            return obj
    return None


def merged_causal_lm(loaded: LoadedRun) -> tuple[torch.nn.Module, Any]:
    """A plain transformers causal LM with the run's LoRA merged in (fp32, CPU), and its tokenizer.

    The loaded run's own model is left as it is. A qlora run is merged into the full-precision
    base (the adapter trained on 4-bit weights; merging needs real ones). Encoder, audio and
    vision-language runs have no causal LM to hand out.
    """
    import copy

    from ..train import TrainConfig

    if not loaded.is_causal_lm:
        raise ValueError(
            f"run {loaded.run_id} ({loaded.task_profile}) is not a causal LM: export it as an "
            "adapter or an HF encoder instead"
        )
    method = loaded.method
    if method == "full":
        model = copy.deepcopy(loaded.model)
    else:
        config = dataclasses.replace(TrainConfig.from_dict(loaded.plan["config"]), method="lora",
                                     device="cpu")
        if method == "qlora":
            fresh = type(loaded.handler)()
            model = fresh.restore(loaded.base_model_path, loaded.weights_dir,
                                  dict(loaded.plan.get("handler_state") or {}), config)
        else:
            model = copy.deepcopy(loaded.model)
        model = model.merge_and_unload()
    model.eval()
    model.config.use_cache = True
    return model, _tokenizer_of(loaded.handler)
