"""Optional-backend noise stays out of normal output (make demo, every LoRA run)."""

from __future__ import annotations

import subprocess
import sys

import pytest

NOISE = "Failed to load CPU gemm_4bit_forward"


def _stderr(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr


def test_bitsandbytes_cpu_kernel_notice_is_dropped_but_other_warnings_stay() -> None:
    pytest.importorskip("bitsandbytes")
    if NOISE not in _stderr("import bitsandbytes"):
        pytest.skip("this CPU/bitsandbytes prints no kernels notice (no AVX-512 BF16 path)")
    assert NOISE not in _stderr("import brewslm_core, peft")
    other = _stderr("import logging, brewslm_core, bitsandbytes\n"
                    "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('another warning')")
    assert "another warning" in other
