"""What deploy reads from the stages below it: export bundles, eval reports, gold rows.

Bundles come only through ``brewslm_core.export.load_bundle`` and reports only through
``brewslm_core.evaluate.latest_report``; this module turns them into the few facts deploy needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..project import Project
from .store import DeploymentError


@dataclass(frozen=True)
class Servable:
    """How to serve one export: read from its bundle's ``serve`` block."""

    export_id: str
    format: str
    source_run: str
    task_profile: str
    kind: str  # causal_lm | encoder
    model_dir: Path  # absolute
    adapter_dir: Path | None  # absolute, when a LoRA adapter is served beside the base
    served_model_name: str  # the base model's name on the server
    adapter_name: str | None  # the LoRA module's name, when an adapter is served beside the base
    command: tuple[str, ...]  # the bundle's serve command; relative paths are inside bundle_dir
    env: dict[str, str]
    bundle_dir: Path


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def flag_value(argv: tuple[str, ...] | list[str], flag: str) -> str | None:
    """The value after ``flag`` in a command line (or ``flag=value``), else None."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def serve_spec(project: Project, export_id: str) -> Servable:
    """The serve facts of ``exports/<export_id>`` (through the export stage's ``load_bundle``)."""
    from ..export import load_bundle

    try:
        bundle = load_bundle(project, export_id)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise DeploymentError(f"export {export_id!r} cannot be deployed: {exc}") from exc
    bundle_dir = Path(_get(bundle, "path") or project.exports_dir / export_id)
    serve = _get(bundle, "serve") or {}
    if not serve or not _get(serve, "model_dir"):
        raise DeploymentError(
            f"export {export_id} ({_get(bundle, 'format')}) has no serve block in its manifest; "
            "export with --format vllm or hf (or gguf for llama.cpp) to deploy it"
        )

    def where(rel: str | None) -> Path | None:
        if not rel:
            return None
        p = Path(rel)
        return p if p.is_absolute() else (bundle_dir / p)

    model_dir = where(_get(serve, "model_dir"))
    assert model_dir is not None
    adapter_dir = where(_get(serve, "adapter_dir"))
    command = tuple(_get(serve, "command") or ())
    name = str(_get(serve, "served_model_name") or export_id)
    base_name = flag_value(command, "--served-model-name") or name
    adapter_name = None
    if adapter_dir is not None:
        module = flag_value(command, "--lora-modules")
        adapter_name = module.split("=", 1)[0] if module else ("adapter" if base_name == name else name)
    return Servable(
        export_id=str(_get(bundle, "export_id") or export_id),
        format=str(_get(bundle, "format")),
        source_run=str(_get(bundle, "source_run")),
        task_profile=str(_get(bundle, "task_profile")),
        kind=str(_get(serve, "kind") or "causal_lm"),
        model_dir=model_dir,
        adapter_dir=adapter_dir,
        served_model_name=base_name,
        adapter_name=adapter_name,
        command=command,
        env=dict(_get(serve, "env") or {}),
        bundle_dir=bundle_dir,
    )


def promotable(project: Project, run_id: str) -> tuple[bool, str, str | None]:
    """(promotable, why, eval_id) from the run's latest eval report."""
    from ..evaluate import latest_report

    report = latest_report(project, run_id)
    if report is None:
        return False, f"run {run_id} has no eval report; run `brewslm eval PROJECT {run_id}` first", None
    eval_id = _get(report, "eval_id")
    if not _get(report, "promotable"):
        why = _get(report, "not_promotable_reason") or "a gate failed"
        return False, f"eval {eval_id} of {run_id} is not promotable: {why}", eval_id
    return True, f"eval {eval_id} passed its gates", eval_id


@dataclass(frozen=True)
class GoldExample:
    id: str
    messages: tuple[dict[str, str], ...]  # the prompt (chat) for generative tasks
    text: str | None  # the input for encoder tasks
    expected: str


def _example(row: dict[str, Any], i: int) -> GoldExample | None:
    rec = row.get("record") or {}
    rid = str(row.get("text_hash") or row.get("row_index") or i)
    msgs = rec.get("messages")
    if isinstance(msgs, list) and msgs and msgs[-1].get("role") == "assistant":
        prompt = tuple({"role": m["role"], "content": m["content"]} for m in msgs[:-1])
        return GoldExample(id=rid, messages=prompt, text=None, expected=str(msgs[-1]["content"]))
    if "instruction" in rec and "output" in rec:
        user = rec["instruction"] + ("\n\n" + rec["input"] if rec.get("input") else "")
        return GoldExample(
            id=rid, messages=({"role": "user", "content": user},), text=None, expected=str(rec["output"])
        )
    if "text" in rec and "label" in rec:
        return GoldExample(id=rid, messages=(), text=str(rec["text"]), expected=str(rec["label"]))
    return None


def gold_examples(project: Project, limit: int | None = None) -> tuple[str, list[GoldExample]]:
    """The prepared gold split (else the eval split): (source, examples), at most ``limit``."""
    for split in ("gold", "eval"):
        path = project.prepared_dir / f"{split}.jsonl"
        if not path.is_file():
            continue
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            ex = _example(json.loads(line), i)
            if ex is not None:
                out.append(ex)
            if limit is not None and len(out) >= limit:
                break
        if out:
            return f"prepared/{split}.jsonl", out
    return "none", []
