"""Keep optional-backend noise out of normal output.

bitsandbytes logs "Failed to load CPU gemm_4bit_forward from kernels-community …" at WARNING on
every import on CPUs with AVX-512 BF16 when the optional ``kernels`` package is absent. peft
imports bitsandbytes whenever it is installed, so every LoRA run (and ``make demo``) printed it
although only method="qlora" uses those kernels, and qlora works without them (a slower path).
The filter drops exactly that message; every other bitsandbytes warning still shows.
"""

from __future__ import annotations

import logging

NOISE: dict[str, tuple[str, ...]] = {
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",),
}


class _DropKnownNoise(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_optional_backends() -> None:
    """Install the filters (idempotent)."""
    for name, prefixes in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(prefixes))
