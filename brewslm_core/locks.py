"""The file lock moved to ``brewslm_core.common.locks``; this name stays for old imports."""

from .common.locks import file_lock

__all__ = ["file_lock"]
