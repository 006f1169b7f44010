"""What kind of data a bare path holds, judged by its content first and its name second."""

from __future__ import annotations

import re
from pathlib import Path

from . import plaintext  # noqa: F401  (registers the text connector)
from .base import binary_problem, placeholder_problem, read_head
from .encoding import bom_encoding, utf16_without_bom
from .json_file import looks_like_json_lines
from .plaintext import looks_delimited, looks_like_fasttext

PARQUET_MAGIC = b"PAR1"
_BIO = re.compile(r"(O|[BIESLU]-\S+)")
MEDIA_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".png", ".jpg", ".jpeg", ".webp"}
HF_DISK_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")


UPOS = frozenset("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB "
                 "X".split())


def is_comment(line: str) -> bool:
    """A ``#`` comment line (CoNLL-U ``# text = …``), not a ``#<TAB>O`` token line of tweets."""
    if not line.startswith("#"):
        return False
    if "\t" in line:  # GermEval writes "#<TAB>source [date]"; a token never holds a space
        cells = line.split("\t")
        return len(cells) == 2 and " " in cells[1].strip()
    parts = line.split()
    return not (len(parts) == 2 and _BIO.fullmatch(parts[1]))


def conll_columns(lines: list[str]) -> list[list[str]]:
    """Cells of token lines: ``#`` comments and ``-DOCSTART-`` skipped, tabs (else spaces) split."""
    out = []
    for line in lines:
        if not line.strip() or line.startswith("-DOCSTART-") or is_comment(line):
            continue
        out.append([c.strip() for c in (line.split("\t") if "\t" in line else line.split())])
    return out


def tag_column_kind(values: list[str]) -> str | None:
    """"bio" or "upos" when >= 90% of a column's values are such tags."""
    if not values:
        return None
    if sum(bool(_BIO.fullmatch(v)) for v in values) >= 0.9 * len(values):
        return "bio"
    if sum(v in UPOS for v in values) >= 0.9 * len(values):
        return "upos"
    return None


def looks_like_conll(head: bytes) -> bool:
    """Token/tag lines in blank-line separated blocks: some column holds BIO or UPOS tags.

    ``#`` comment lines (CoNLL-U, GermEval) and a leading token-index column are allowed.
    """
    try:
        text = head.decode("utf-8", errors="replace")
    except LookupError:  # pragma: no cover
        return False
    if "\n\n" not in text.replace("\r\n", "\n"):
        return False
    rows = conll_columns(text.splitlines()[:400])
    if len(rows) < 3:
        return False
    widths = [len(r) for r in rows]
    width = max(set(widths), key=widths.count)
    if not 2 <= width <= 12 or widths.count(width) < 0.9 * len(rows):
        return False
    same = [r for r in rows if len(r) == width]
    return any(tag_column_kind([r[i] for r in same]) for i in range(1, width))


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
    if by_name in ("json", "jsonl") and stripped[:1] in b'"-0123456789tfn' and _json_line(stripped):
        return by_name, "a bare JSON value, kind from its name"
    not_json = ""
    if by_name in ("json", "jsonl"):
        start = stripped[:40].decode("utf-8", errors="replace")
        not_json = (f"named .{by_name} but the content is not JSON (it starts {start!r}), so "
                    "another reader is used: ")
    if looks_like_conll(head):
        return "conll", not_json + "token/tag lines in blank-line separated sentences"
    if looks_like_fasttext(head):
        return "text", not_json + "fastText lines (__label__X text)"
    if by_name in (None, "json", "jsonl") and not looks_delimited(head):
        return "text", not_json + "plain text, not delimited: one document per block or line"
    return "csv", not_json + "delimited text"


def _json_line(head: bytes) -> bool:
    """The first line parses as a JSON value (a bare string, number, true/false/null)."""
    import json

    line = head.split(b"\n", 1)[0].strip()
    try:
        json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return False
    return True


def _kind_from_name(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".txt")]
    for suffix in reversed(suffixes):
        kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                ".tsv": "tsv", ".parquet": "parquet", ".conll": "conll",
                ".conllu": "conll"}.get(suffix)
        if kind:
            return kind
    return None
