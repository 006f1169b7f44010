"""The canonical records moved down to ``brewslm_core.contracts.shapes``; this name stays for old imports."""

from ..contracts.shapes import (
    CHAT_ROLES,
    CHAT_SHAPES,
    MEDIA_SHAPES,
    RECORD_KEYS,
    UnknownShapeError,
    check_shape,
    hash_bytes,
    record_text,
    task_profile,
    text_hash,
)

__all__ = [
    "CHAT_ROLES",
    "CHAT_SHAPES",
    "MEDIA_SHAPES",
    "RECORD_KEYS",
    "UnknownShapeError",
    "check_shape",
    "hash_bytes",
    "record_text",
    "task_profile",
    "text_hash",
]
