"""Capturing a teacher for distillation: resolve it, run it once over the rows, store its top-k.

The capture format and reading it back live in ``distill.py`` (the SFT handler reads captures);
this module needs the SFT handler to encode rows exactly as training does, so it sits above the
handlers and ``distill.py`` stays below them (no import cycle).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .distill import (
    CAPTURE_FILE,
    DEFAULT_MAX_LENGTH,
    INDEX_FILE,
    TENSORS_FILE,
    DistillError,
    TeacherCapture,
    example_key,
    tokenizer_fingerprint,
)
from .handlers.encoder_tools import device_of, to_device
from .handlers.seq2seq import Seq2SeqHandler

if TYPE_CHECKING:
    from ..project import Project


# ---- the teacher ------------------------------------------------------------------------
def resolve_teacher(project: Project, teacher: str) -> Path:
    """The folder of a causal-LM teacher: "auto" (the SFT default), a run id, or a local folder.

    A run's ``adapter/`` holds full weights after method "full" and a LoRA adapter otherwise;
    both are accepted (an adapter is merged into its base when loaded).
    """
    from ..models import ModelNotAvailableError, resolve_base
    from .base_model import resolve_model_path

    if teacher == "auto":
        return resolve_model_path("auto", "seq2seq")
    # a run id is a plain name; anything with a path in it is a folder
    is_name = bool(teacher) and Path(teacher).name == teacher and teacher not in (".", "..")
    run = project.run_dir(teacher) if is_name else None
    if run is not None and run.is_dir():
        folder = run / "adapter"
        if not folder.is_dir():
            raise DistillError(
                f"run {teacher!r} has no adapter/ folder yet (it has not finished); "
                "use a completed run or a model folder as the teacher"
            )
    else:
        folder = Path(teacher).expanduser()
        if not folder.is_dir():
            runs = sorted(p.name for p in project.runs_dir.iterdir() if p.is_dir())
            raise DistillError(
                f"teacher {teacher!r} is neither a run of this project (runs: {', '.join(runs) or 'none'}) "
                "nor a model folder; pass a finished run id, a local model folder, or 'auto'"
            )
    if (folder / "adapter_config.json").is_file():
        base = json.loads((folder / "adapter_config.json").read_text("utf-8"))["base_model_name_or_path"]
        _check_causal(resolve_base, ModelNotAvailableError, str(base), teacher)
        return folder.resolve()
    _check_causal(resolve_base, ModelNotAvailableError, str(folder), teacher)
    return folder.resolve()


def _check_causal(resolve_base: Any, not_available: type[Exception], path: str, asked: str) -> None:
    try:
        kind = resolve_base(path, "seq2seq").kind
    except not_available as exc:
        raise DistillError(f"teacher {asked!r} cannot be used: {exc}") from exc
    if kind != "causal_lm":
        raise DistillError(
            f"teacher {asked!r} is a {kind} model, not a causal LM: distillation for SFT needs a "
            "decoder-only teacher (e.g. a finished SFT run id, or 'auto')"
        )


def load_teacher(folder: Path) -> Any:
    """The teacher in eval mode, fp32 (a LoRA adapter merged into its base)."""
    import torch
    from transformers import AutoModelForCausalLM

    opts = {"dtype": torch.float32, "attn_implementation": "sdpa"}
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base_path = json.loads(adapter.read_text("utf-8"))["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(base_path, **opts)
        model = PeftModel.from_pretrained(base, folder).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, **opts)
    model.config.use_cache = False
    return model.eval()


def _student_fingerprint(student: str) -> str:
    from transformers import AutoTokenizer

    from .base_model import resolve_model_path

    return tokenizer_fingerprint(AutoTokenizer.from_pretrained(resolve_model_path(student, "seq2seq")))


def _default_rows_and_length(project: Project, rows: Iterable[dict] | None, max_length: int | None):
    from ..prepare import Manifest

    manifest = None
    if rows is None or max_length is None:
        if project.manifest_path.is_file():
            manifest = Manifest.load(project)
        elif rows is None:
            raise DistillError("the project has no prepared manifest: run prepare first, or pass rows")
    if rows is None:
        rows = manifest.iter_split(project, "train")
    if max_length is None:
        max_length = manifest.max_length if manifest is not None else DEFAULT_MAX_LENGTH
    return list(rows), int(max_length)


# ---- capture ----------------------------------------------------------------------------
def capture_teacher(
    project: Project,
    teacher: str = "auto",
    rows: Iterable[dict] | None = None,
    *,
    top_k: int = 8,
    max_length: int | None = None,
    batch_size: int = 8,
    threads: int = 0,
    student: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> TeacherCapture:
    """Run the teacher over ``rows`` (default: the manifest's train split) and store its top-k.

    ``max_length`` defaults to the manifest's, which is what a training run uses; a run with
    another max_length truncates differently and finds no capture for the cut rows. Give
    ``student`` (a base name or folder) to check its tokenizer against the teacher's now
    rather than at train time. Emits one ``distillation_teacher_capture`` event.
    """
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    if top_k < 1:
        raise DistillError(f"top_k must be at least 1, got {top_k}")
    started = time.monotonic()
    rows, max_length = _default_rows_and_length(project, rows, max_length)
    folder = resolve_teacher(project, teacher)
    # the SFT handler's own encoding, with the teacher's tokenizer, so positions line up
    handler = Seq2SeqHandler()
    handler.setup(folder, rows, TrainConfig(task_profile="seq2seq", max_length=max_length, packing=False))
    fingerprint = tokenizer_fingerprint(handler.tokenizer)
    if student is not None and _student_fingerprint(student) != fingerprint:
        raise DistillError(
            f"teacher {teacher!r} and student {student!r} have different tokenizer vocabularies: "
            "their token ids do not mean the same thing; pick a teacher of the student's family"
        )
    encoded = handler.encode(rows)
    examples: list[Any] = []
    keys: list[str] = []
    seen: set[str] = set()
    for ex in encoded:
        if ex is None:
            continue
        key = example_key(ex.input_ids)
        if key not in seen:  # a repeated row is captured once
            seen.add(key)
            examples.append(ex)
            keys.append(key)
    skipped = sum(e is None for e in encoded)
    vocab = len(handler.tokenizer)
    if top_k > vocab:
        raise DistillError(f"top_k {top_k} is larger than the vocabulary ({vocab})")

    torch.set_num_threads(threads or os.cpu_count() or 1)
    model = load_teacher(folder)
    device = device_of(model)
    # shortest first: padded rows of similar length waste little compute
    order = sorted(range(len(examples)), key=lambda i: examples[i].length)
    got_ids: list[Any] = [None] * len(examples)
    got_logp: list[Any] = [None] * len(examples)
    n_batches = -(-len(order) // batch_size)
    with torch.no_grad():
        for b in range(n_batches):
            chunk = order[b * batch_size : (b + 1) * batch_size]
            # unpacked: row r is example chunk[r], so its loss positions come out in order
            batch = to_device(handler.collate([examples[i] for i in chunk], False), device)
            logits, keep = handler.supervised_logits(model, batch)
            top = torch.log_softmax(logits.float(), dim=-1).topk(top_k, dim=-1)  # sorted, descending
            counts = keep.sum(dim=1).tolist()
            for i, part_ids, part_logp in zip(
                chunk, top.indices.split(counts), top.values.split(counts), strict=True
            ):
                got_ids[i] = part_ids.to(torch.int32).cpu().numpy()
                got_logp[i] = part_logp.cpu().numpy()
            if progress is not None:
                progress(b + 1, n_batches, f"{sum(counts)} positions")
    lengths = [len(x) for x in got_ids]
    offsets = np.zeros(len(examples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = int(offsets[-1])
    empty = np.zeros((0, top_k))
    ids = np.concatenate(got_ids).astype(np.int32) if got_ids else empty.astype(np.int32)
    logp = np.concatenate(got_logp).astype(np.float32) if got_logp else empty.astype(np.float32)

    capture_id = f"distill-{secrets.token_hex(4)}"
    final = project.teacher_dir(capture_id)
    meta = {
        "capture_id": capture_id,
        "teacher": teacher,
        "teacher_path": str(folder),
        "tokenizer_fingerprint": fingerprint,
        "vocab_size": vocab,
        "top_k": top_k,
        "max_length": max_length,
        "rows": len(rows),
        "examples": len(examples),
        "positions": positions,
        "skipped": skipped,
    }
    # everything is written into a temporary folder first: a capture appears whole or not at all
    tmp = final.parent / f".{capture_id}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        save_file({"ids": ids, "logprobs": logp, "offsets": offsets}, str(tmp / TENSORS_FILE))
        (tmp / INDEX_FILE).write_text(json.dumps(keys), encoding="utf-8")
        (tmp / CAPTURE_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - started
    project.events.append(
        stage="ingestion",
        severity="info",
        reason_code="distillation_teacher_capture",
        run_id=capture_id,
        summary=f"teacher top-{top_k} logprobs captured at {positions} positions of {len(examples)} examples",
        payload={
            "capture_id": capture_id,
            "teacher": teacher,
            "top_k": top_k,
            "rows": len(rows),
            "examples": len(examples),
            "positions": positions,
            "skipped": skipped,
            "path": str(final),
            "seconds": seconds,
        },
    )
    fields = {k: v for k, v in meta.items() if k != "vocab_size"}
    return TeacherCapture(path=str(final), seconds=seconds, **fields)
