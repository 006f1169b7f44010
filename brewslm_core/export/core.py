"""export(project, run_id, fmt, quant) -> ExportBundle, with one RunEvent per outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.export import EXPORT_FORMATS, EXPORT_SCHEMA_VERSION, ExportBundle
from . import formats
from .bundle import finish, new_export_id, staging
from .source import ExportError, RunSource, lineage, read_run

if TYPE_CHECKING:
    from ..project import Project

NOT_APPLICABLE = {
    "encoder": {
        "gguf": "GGUF (llama.cpp) runs causal language models; this is an encoder task",
        "vllm": "the vllm bundle layout is for causal LMs; encoder runs are served over predict",
    },
    "other": {
        "gguf": "GGUF export is written for Llama-architecture causal LMs only",
        "vllm": "the vllm bundle layout is for causal LMs",
    },
}


def parse_quant(quant: str | Sequence[str] | None) -> tuple[str, ...]:
    """"f16,q8_0" or ["f16", "q8_0"] -> ("f16", "q8_0"), lower-cased, order kept, no repeats."""
    if not quant:
        return ()
    items = quant.split(",") if isinstance(quant, str) else list(quant)
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if item and item not in out:
            out.append(item)
    return tuple(out)


def _base_model(source: RunSource) -> dict[str, Any]:
    config = source.plan.get("config") or {}
    return {"path": str(source.base_model_path), "requested": config.get("base"),
            "method": config.get("method"), "lora": source.is_lora, "lora_rank": source.lora_rank}


def _write(source: RunSource, fmt: str, out: Path, quants: tuple[str, ...]) -> formats.Written:
    if fmt == "adapter":
        return formats.write_adapter(source, out)
    if fmt == "hf":
        return formats.write_hf(source, out)
    if fmt == "vllm":
        return formats.write_vllm(source, out)
    return formats.write_gguf_bundle(source, out, quants)


def export(
    project: Project, run_id: str, fmt: str, quant: str | Sequence[str] | None = (), *, actor: str = "system"
) -> ExportBundle:
    """Export run ``run_id`` as ``fmt`` (adapter | hf | gguf | vllm) into ``exports/<export_id>/``.

    ``quant`` (gguf only) lists variants: f16, q8_0, q4_0, q4_1, q5_0, q5_1 in Python; q4_k_m
    (and other K-quants) through llama.cpp when llama-cpp-python is installed. Raises ExportError
    (with its reason code, after recording the event) when no bundle could be made.
    """
    export_id = new_export_id()
    quants = parse_quant(quant)
    try:
        if fmt not in EXPORT_FORMATS:
            raise ExportError("export_run_failed", f"unknown export format {fmt!r}; choose one of "
                              f"{', '.join(EXPORT_FORMATS)}")
        if quants and fmt != "gguf":
            raise ExportError("export_run_failed", f"--quant applies to --format gguf only (got {fmt})")
        source = read_run(project, run_id)
        with staging(project, export_id) as tmp:
            written = _write(source, fmt, tmp, quants)
            if source.kind == "causal_lm":  # what else exists, and why it is not in this bundle
                for key, value in formats.other_quant_status(fmt).items():
                    written.quantizations.setdefault(key, value)
            if fmt == "gguf" and not any(v.status == "available" for k, v in written.quantizations.items()
                                         if k.lower() in (quants or formats.DEFAULT_GGUF_QUANTS)):
                reasons = "; ".join(f"{q}: {why}" for q, why in written.failed)
                raise ExportError("export_quantization_failed",
                                  f"no GGUF variant of {run_id} passed: {reasons}")
            bad = [c for c in written.smoke.get("checks", []) if not c["passed"]]
            if fmt != "gguf" and bad:
                raise ExportError("export_run_failed", f"{fmt} export of {run_id} failed its smoke check: "
                                  + "; ".join("; ".join(c["failures"]) for c in bad))
            bundle = ExportBundle(
                schema_version=EXPORT_SCHEMA_VERSION,
                export_id=export_id,
                format=fmt,
                source_run=run_id,
                task_profile=source.task_profile,
                base_model=_base_model(source),
                files=(),
                quantizations=written.quantizations,
                lineage=lineage(project, source),
                serve=written.serve,
                not_applicable=NOT_APPLICABLE.get(source.kind, {}),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                path="",
            )
            passed = all(c["passed"] for c in written.smoke.get("checks", []))
            smoke_record = {"export_id": export_id, "source_run": run_id, "format": fmt, "passed": passed,
                            **written.smoke}
            done = finish(project, tmp, bundle, smoke_record)
    except ExportError as exc:
        _event(project, "error", exc.reason_code, export_id, run_id, str(exc), {"format": fmt}, actor)
        raise
    except Exception as exc:  # anything else: recorded, then raised as an ExportError
        message = f"{type(exc).__name__}: {exc}"
        _event(project, "error", "export_run_failed", export_id, run_id, message, {"format": fmt}, actor)
        raise ExportError("export_run_failed", f"export of {run_id} as {fmt} failed: {message}") from exc
    for variant, why in written.failed:
        _event(project, "warning", "export_quantization_failed", export_id, run_id,
               f"GGUF {variant} not produced as asked: {why}",
               {"format": fmt, "quantization": variant, "status": done.quantizations[variant.upper()].status},
               actor)
    size = sum(f.size for f in done.files)
    _event(project, "info", None, export_id, run_id, f"exported {run_id} as {fmt}",
           {"format": fmt, "output_path": done.path, "file_size_bytes": size, "export_id": export_id,
            "quantizations": {k: v.status for k, v in done.quantizations.items()},
            "smoke_passed": smoke_record["passed"]}, actor)
    return done


def _event(project: Project, severity: str, reason: str | None, export_id: str, run_id: str, summary: str,
           payload: dict[str, Any], actor: str) -> None:
    project.events.append(stage="export", severity=severity, reason_code=reason, run_id=export_id,
                          parent_run_id=run_id, summary=summary[:500], payload=payload, actor=actor)
