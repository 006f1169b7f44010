"""The duplicate key of a canonical record: the WHOLE record (tools, answers, labels, spans
included), not only its text. Two chats that differ only in their tools, or two QA rows that
differ only in their answers, are different rows.

The key is the MD5 digest (16 bytes: a dedup key, not a security hash; the map stage kept 16
bytes of sha256 before) of an unambiguous length-prefixed serialisation (``canonical``), simple
enough for the columnar fast path (columnar.py) to build the same bytes, and hash them, in SQL.
"""

from __future__ import annotations

import hashlib
from typing import Any


def canonical(value: Any) -> str:
    """str -> ``s<len>:<text>``; dict keys sorted; lists in order; scalars typed."""
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, bool):
        return "T" if value else "F"
    if value is None:
        return "n"
    if isinstance(value, int):
        return f"i{value};"
    if isinstance(value, float):
        return f"f{value!r};"
    if isinstance(value, dict):
        return "{" + "".join(canonical(str(k)) + canonical(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + "".join(canonical(v) for v in value) + "]"
    return canonical(str(value))


def record_key(shape: str, record: dict[str, Any]) -> bytes:
    """16-byte MD5 digest of ``shape`` and the whole canonical record."""
    return hashlib.md5(f"{shape}\x00{canonical(record)}".encode("utf-8", "surrogatepass"),
                       usedforsecurity=False).digest()
