"""Export stage: a trained run becomes a bundle other tools load (adapter, merged HF, GGUF, vLLM).

    from brewslm_core.export import export, load_bundle, list_exports
    bundle = export(project, "exp-…", "gguf", quant="f16,q8_0")   # exports/<export_id>/
    bundle.quantizations["Q8_0"].status                            # available | unavailable | failed

Every bundle holds the weights, the tokenizer, ``manifest.json`` (files with sha256, source run,
base model, quantisation variants, lineage, serve command) and ``smoke.json`` (the artifact
reloaded by an independent loader, logits compared with the source model). torch/transformers
load lazily: importing this package is cheap.
"""

from ..contracts.export import EXPORT_FORMATS, ExportBundle, ExportFile, QuantVariant, ServeSpec
from .bundle import ExportNotFoundError, list_exports, load_bundle, verify_files
from .core import export, parse_quant
from .source import ExportError

__all__ = [
    "EXPORT_FORMATS",
    "ExportBundle",
    "ExportError",
    "ExportFile",
    "ExportNotFoundError",
    "QuantVariant",
    "ServeSpec",
    "export",
    "list_exports",
    "load_bundle",
    "parse_quant",
    "verify_files",
]
