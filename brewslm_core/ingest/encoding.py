"""Text encoding of a whole file (not just its head).

Rule: a BOM decides (utf-8-sig, utf-16, utf-32). Otherwise the WHOLE file is checked as UTF-8
in large chunks; if it decodes, it is UTF-8 (a pure-ASCII head proves nothing, see files whose
first non-ASCII byte sits 35 KB in). If some lines fail but at least as many valid multi-byte
UTF-8 sequences occur elsewhere, it is still UTF-8 and the failing lines become sentinel rows.
Otherwise it is a single-byte code page: each candidate is scored on the non-ASCII words it produces
(one script per word, no capitals inside words, mostly common letters,
a natural share of vowels, no C1 control characters), ties going to cp1252, the usual one.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import NamedTuple

from .base import open_binary

CHUNK = 1 << 20
ENOUGH_UTF8 = 10_000  # this many valid multi-byte sequences settle it: the file is UTF-8
SAMPLE_LINES = 2000

# Candidate single-byte code pages in preference order (first wins a tie).
SINGLE_BYTE = (
    "cp1252",
    "iso8859_15",
    "cp1250",
    "iso8859_2",
    "iso8859_7",
    "cp1253",
    "cp1251",
    "koi8_r",
    "iso8859_5",
    "cp1254",
    "cp1257",
    "cp437",
    "cp850",
)

_VOWELS = set(
    "aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœăąęěıőűůāēīōū"
    "αεηιουωάέήίόύώϊϋΐΰ"
    "аеёиоуыэюяіїєў"
)
_WORD = re.compile(r"\w+")


def _script(ch: str) -> str:
    code = ord(ch)
    if code < 0x250:
        return "latin"
    if 0x370 <= code < 0x400:
        return "greek"
    if 0x400 <= code < 0x530:
        return "cyrillic"
    return "other"


# The most frequent letters of each script; mojibake spreads over rare letters instead.
_COMMON = {
    "latin": set("etaoinsrhldcumfpgwybvk") | set("éèàçüöäñíóúâêôßîïûëùòìáãõåæøœ"),
    "greek": set("αοιετσςνηυρπκμλωάέίόήύώ"),
    "cyrillic": set("оеаинтсрвлкмдпуяыьгзбчйхжшюцщэ"),
}


def score_decoding(text: str) -> float:
    """Lower is more plausible. Mojibake mixes scripts inside a word, puts capitals in the
    middle of words and uses a script's rare letters."""
    controls = len(_C1.findall(text))  # C1 control characters are never text
    words = [w for w in _WORD.findall(text) if not w.isascii() and not w.isdigit()]
    if not words:
        return float(controls)
    mixed = odd = camel = letters = common = vowels = other = 0
    for word in words:
        scripts = {_script(ch) for ch in word if ch.isalpha()}
        mixed += len(scripts) > 1
        odd += "other" in scripts
        if scripts == {"latin"} and len(word) >= 3:
            # Latin-script words carry an accent or two, not mostly accents (Greek as Latin-1).
            odd += sum(not ch.isascii() for ch in word) > len(word) / 2
        camel += any(a.islower() and b.isupper() for a, b in zip(word, word[1:], strict=False))
        for ch in word:
            if ch.isalpha():
                letters += 1
                common += ch.lower() in _COMMON.get(_script(ch), ())
                # Vowel share separates Greek from Cyrillic mojibake; Latin text has ASCII
                # vowels around its accents, so it is only counted for the other scripts.
                if _script(ch) != "latin":
                    vowels += ch.lower() in _VOWELS
                    other += 1
    n = len(words)
    rare = 1 - common / letters if letters else 0.0
    vowel_drift = abs(vowels / other - 0.42) if other else 0.0
    return 2.0 * (mixed + odd) / n + camel / n + rare + 2.0 * vowel_drift + controls


_HIGH_TOKEN = re.compile(rb"[^\x00-\x20,;|\"'()\[\]{}<>]*[\x80-\xff][^\x00-\x20,;|\"'()\[\]{}<>]*")
_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")
_C1 = re.compile("[\x80-\x9f]")


def pick_single_byte(sample: bytes) -> str:
    """Best code page for the distinct tokens that hold non-ASCII bytes (all that differs)."""
    tokens = list(dict.fromkeys(_HIGH_TOKEN.findall(sample)))[:3000]
    sample = b" ".join(tokens)
    best = "latin-1"
    best_score = float("inf")
    for enc in SINGLE_BYTE:
        try:
            text = sample.decode(enc)
        except UnicodeDecodeError:
            continue
        score = score_decoding(text)
        if score < best_score - 1e-9:
            best, best_score = enc, score
    return best


def bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM shows NUL in every other byte."""
    if len(head) < 8:
        return None
    even = head[0::2].count(0) / max(1, len(head[0::2]))
    odd = head[1::2].count(0) / max(1, len(head[1::2]))
    if odd > 0.4 and even < 0.05:
        return "utf-16-le"
    if even > 0.4 and odd < 0.05:
        return "utf-16-be"
    return None


class EncodingInfo(NamedTuple):
    encoding: str  # python codec name
    notes: list[str]
    clean: bool  # every byte decodes: rows need no undecodable-bytes check
    has_nul: bool  # the file holds NUL bytes somewhere


def detect_encoding(path: Path) -> EncodingInfo:
    """The encoding of the whole file, with notes for describe()."""
    notes: list[str] = []
    with open_binary(path) as fh:
        head = fh.read(4096)
        found = bom_encoding(head) or utf16_without_bom(head)
        if found:
            return EncodingInfo(found, [f"encoding {found} (byte order mark or NUL pattern)"],
                                False, False)
        fh.seek(0)
        has_nul = False
        bad_lines = 0
        good_multibyte = 0  # valid multi-byte UTF-8 sequences seen
        first_bad: int | None = None
        sample: list[bytes] = []
        line_no = 0
        carry = b""
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                block, carry = carry, b""
            else:
                block = carry + chunk
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            if block:
                has_nul = has_nul or b"\x00" in block
                try:
                    block.decode("utf-8")
                    if good_multibyte < ENOUGH_UTF8 and not block.isascii():
                        good_multibyte += len(_MULTIBYTE.findall(block))
                    line_no += block.count(b"\n")
                except UnicodeDecodeError:
                    for line in block.splitlines(keepends=True):
                        line_no += 1
                        try:
                            line.decode("utf-8")
                            if good_multibyte < ENOUGH_UTF8 and not line.isascii():
                                good_multibyte += len(_MULTIBYTE.findall(line))
                        except UnicodeDecodeError:
                            bad_lines += 1
                            first_bad = first_bad or line_no
                            if len(sample) < SAMPLE_LINES:
                                sample.append(line)
            if not chunk:
                break
    if bad_lines == 0:
        return EncodingInfo("utf-8", [], True, has_nul)
    if good_multibyte >= min(bad_lines, ENOUGH_UTF8):  # real multi-byte UTF-8 is no accident
        notes.append(
            f"encoding utf-8 with {bad_lines} undecodable line(s) (first at line {first_bad}); "
            "they become sentinel rows"
        )
        return EncodingInfo("utf-8", notes, False, has_nul)
    enc = pick_single_byte(b"".join(sample))
    notes.append(f"encoding {enc} (not UTF-8; single-byte code page chosen over the whole file)")
    return EncodingInfo(enc, notes, _decodes(path, enc), has_nul)


def _decodes(path: Path, encoding: str) -> bool:
    """True when every byte of the file is defined in this single-byte code page."""
    with open_binary(path) as fh:
        while chunk := fh.read(CHUNK):
            try:
                chunk.decode(encoding)
            except UnicodeDecodeError:
                return False
    return True
