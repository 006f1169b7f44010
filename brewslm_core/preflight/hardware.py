"""What this machine offers a training run: cores, RAM, CUDA devices, reduced-precision support."""

from __future__ import annotations

import os
import platform

from ..contracts.preflight import HardwareInfo

MB = 2**20


def _cpu_precision() -> tuple[bool, bool]:
    """(bf16, fp16) usable natively on this CPU.

    Autocast runs in either dtype on any CPU, but without native instructions (AVX512-BF16 /
    AMX / AVX512-FP16 on x86, their ARM equivalents) the kernels emulate and run slower than
    fp32, so a request for them is a mistake worth stopping. oneDNN knows what the CPU has.
    """
    import torch

    mkldnn = torch.ops.mkldnn
    bf16 = bool(getattr(mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    fp16 = bool(getattr(mkldnn, "_is_mkldnn_fp16_supported", lambda: False)())
    return bf16, fp16


def _cuda_devices() -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        major = props.major
        out.append(
            {
                "index": i,
                "name": props.name,
                "total_mb": round(total / MB, 1),
                "free_mb": round(free / MB, 1),
                "bf16": major >= 8,  # Ampere and later
                "fp16": major >= 6,
            }
        )
    return out


def detect_hardware() -> HardwareInfo:
    """Detect cores, RAM (psutil), CUDA devices and memory, and bf16/fp16 support."""
    import psutil

    try:
        import torch

        torch_version: str | None = torch.__version__
        cpu_bf16, cpu_fp16 = _cpu_precision()
        cuda = _cuda_devices()
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    except ImportError:  # the dependency check reports the missing torch
        torch_version, cpu_bf16, cpu_fp16, cuda, mps = None, False, False, [], False
    vm = psutil.virtual_memory()
    bf16 = {"cpu": cpu_bf16}
    fp16 = {"cpu": cpu_fp16}
    if cuda:
        bf16["cuda"] = all(d["bf16"] for d in cuda)
        fp16["cuda"] = all(d["fp16"] for d in cuda)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return HardwareInfo(
        cpu_cores=int(cores or 1),
        ram_total_mb=round(vm.total / MB, 1),
        ram_available_mb=round(vm.available / MB, 1),
        cuda_devices=tuple(cuda),
        bf16=bf16,
        fp16=fp16,
        mps=mps,
        platform=f"{platform.system()} {platform.machine()}",
        torch_version=torch_version,
    )


def device_for(requested: str, hardware: HardwareInfo) -> str:
    """The device type a run will use ("auto" resolves like the engine: cuda, else cpu)."""
    if requested == "auto":
        return "cuda" if hardware.cuda_devices else "cpu"
    return requested
