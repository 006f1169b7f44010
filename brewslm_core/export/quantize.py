"""Quantisations that need another tool: llama.cpp's K-quants, and the GPU-side AWQ/GPTQ.

Each reports ``available | unavailable | failed`` with a reason; nothing is faked. K-quants work
in 256-wide super-blocks: llama.cpp stores a tensor whose rows are not a multiple of 256 in a
fallback type while the file header still says Q4_K_M, so the variant records which tensors
that hit (read back from the written file).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

from .gguf_file import k_quant_misfits

# Our name -> llama.cpp's LLAMA_FTYPE_* constant
LLAMA_CPP_QUANTS: dict[str, str] = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}
LLAMA_CPP_HINT = (
    "llama-cpp-python is not installed (it has no wheel for this platform and compiles from "
    "source in about 7 minutes: CMAKE_ARGS='-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF' "
    "pip install llama-cpp-python); the Python gguf package has no K-quant encoder"
)
# Recorded for every causal-LM bundle so a reader sees what exists and why it is not here.
GPU_QUANTS: dict[str, tuple[str, str]] = {
    "awq": ("awq", "AWQ needs the autoawq package, a CUDA GPU and calibration data"),
    "gptq": ("gptqmodel", "GPTQ needs the gptqmodel package, a CUDA GPU and calibration data"),
}


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def misfit_note(misfits: list[str], total_2d: int) -> str:
    return (
        f"{len(misfits)} of {total_2d} 2-D tensors have row widths not divisible by 256 "
        "(llama.cpp's K-quant super-block); llama.cpp stores them in a non-K fallback type"
    )


def k_quant(f16_path: Path, out_path: Path, quant: str) -> dict[str, Any]:
    """Quantise an F16/F32 GGUF with llama.cpp into a K-quant; the result says what it became.

    Raises RuntimeError when llama.cpp reports an error; the caller records ``failed``.
    """
    import ctypes

    import gguf
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_QUANTS[quant])
    params.nthread = 1
    src, dst = str(f16_path).encode(), str(out_path).encode()
    code = llama_cpp.llama_model_quantize(src, dst, ctypes.byref(params))
    if code != 0 or not out_path.is_file():
        raise RuntimeError(f"llama_model_quantize returned {code}")
    reader = gguf.GGUFReader(str(out_path))
    types = Counter(t.tensor_type.name for t in reader.tensors)
    k_types = {name for name in types if "_K" in name}
    misfits = k_quant_misfits(f16_path)
    return {
        "tensor_types": dict(sorted(types.items())),
        "k_quant_tensors": sum(types[name] for name in k_types),
        "fallback_tensors": misfits,
    }


def gpu_quant_status() -> dict[str, dict[str, Any]]:
    out = {}
    for name, (module, why) in GPU_QUANTS.items():
        present = importlib.util.find_spec(module) is not None
        reason = why if not present else f"{module} is installed, but brewslm does not run {name.upper()} yet"
        out[name] = {"status": "unavailable", "reason": reason, "file": None}
    return out
