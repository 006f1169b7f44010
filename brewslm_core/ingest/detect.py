"""What kind of data a bare path holds, judged by its content first and its name second."""

from __future__ import annotations

import re
from pathlib import Path

from .base import binary_problem, placeholder_problem, read_head
from .encoding import bom_encoding, utf16_without_bom
from .json_file import looks_like_json_lines

PARQUET_MAGIC = b"PAR1"
_BIO = re.compile(r"(O|[BIESLU]-\S+)")
MEDIA_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".png", ".jpg", ".jpeg", ".webp"}
HF_DISK_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")


def looks_like_conll(head: bytes) -> bool:
    """Token/tag lines (last column a BIO tag) in blank-line separated blocks."""
    try:
        text = head.decode("utf-8", errors="replace")
    except LookupError:  # pragma: no cover
        return False
    lines = [ln for ln in text.splitlines()[:400] if ln.strip()]
    if len(lines) < 3 or "\n\n" not in text.replace("\r\n", "\n"):
        return False
    tagged = 0
    for line in lines:
        if line.startswith("-DOCSTART-"):
            tagged += 1
            continue
        parts = line.split()
        if 2 <= len(parts) <= 6 and _BIO.fullmatch(parts[-1]):
            tagged += 1
    return tagged / len(lines) >= 0.9


def detect_kind(path: Path) -> tuple[str, str | None]:
    """(connector kind, a note on how it was decided or why it is unusable)."""
    if path.is_dir():
        if any((path / m).is_file() for m in HF_DISK_MARKERS):
            return "hf", "a datasets save_to_disk folder"
        return "dir", None
    head = read_head(path)
    problem = placeholder_problem(head)
    if problem:
        # Keep the name's own kind so load()/describe() raise the explanation.
        return _kind_from_name(path) or "csv", problem
    if head.startswith(PARQUET_MAGIC):
        return "parquet", "parquet magic bytes"
    binary = binary_problem(head)
    if binary:
        return _kind_from_name(path) or "csv", binary  # load()/describe() raise with this
    by_name = _kind_from_name(path)
    if not head.strip():
        return by_name or "csv", "empty file: kind from its name"
    wide = bom_encoding(head) or utf16_without_bom(head)
    if wide and wide != "utf-8-sig":
        # UTF-16/32: judge the characters, not the bytes.
        head = head.decode(wide, errors="ignore").encode("utf-8")
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped[:1] in (b"[", b"{"):
        if not wide and looks_like_json_lines(path):
            return "jsonl", "one JSON value per line"
        return "json", "JSON document"
    if by_name in ("json", "jsonl") and stripped[:1] in b'"-0123456789tfn':
        return by_name, "a bare JSON value, kind from its name"
    if looks_like_conll(head):
        return "conll", "token/tag lines in blank-line separated sentences"
    return "csv", "delimited text"


def _kind_from_name(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".txt")]
    for suffix in reversed(suffixes):
        kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                ".tsv": "tsv", ".parquet": "parquet", ".conll": "conll"}.get(suffix)
        if kind:
            return kind
    return None
