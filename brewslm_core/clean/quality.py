"""Document quality score and a light language guess.

The score is the PRODUCT of five components, each in [0, 1] where 1 means "no problem seen",
so a single clear defect pulls the document down on its own:

- ``length``: 0 for no word, 0.5 for a single word, 1 for two or more words; above
  ``MAX_CHARS`` it falls as MAX_CHARS / chars.
- ``symbols``: share of non-space characters that are neither letters nor digits, r;
  1 up to 0.30, falling linearly to 0 at 0.80 (markup soup, ASCII art, encoded blobs).
- ``digits``: share of non-space characters that are digits, r; 1 up to 0.30, 0 at 0.80
  (tables of numbers, IDs, logs).
- ``repetition``: share of word 3-grams that repeat an earlier 3-gram (texts with >= 6 words),
  r; 1 up to 0.20, 0 at 0.70 ("buy now buy now buy now ...").
- ``lines``: share of non-empty lines that repeat an earlier line (texts with >= 3 lines),
  r; 1 up to 0.30, 0 at 0.80 (boilerplate, menus).

A document whose score is below ``CleanConfig.min_quality`` (default 0.5) is an outlier.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 100_000
_WORD_RE = re.compile(r"\w+")
_SPACE_RE = re.compile(r"\s")
_DIGIT_RE = re.compile(r"\d")
_SYMBOL_RE = re.compile(r"[^\w\s]|_")  # neither letter, digit nor space


def _ramp(r: float, ok: float, bad: float) -> float:
    """1 when r <= ok, 0 when r >= bad, linear between."""
    if r <= ok:
        return 1.0
    if r >= bad:
        return 0.0
    return (bad - r) / (bad - ok)


def quality(text: str) -> dict[str, object]:
    """{"score": float, "components": {length, symbols, digits, repetition, lines}}."""
    words = _WORD_RE.findall(text.casefold())
    n_chars = len(text)
    length = 0.0 if not words else (0.5 if len(words) == 1 else 1.0)
    if n_chars > MAX_CHARS:
        length *= MAX_CHARS / n_chars
    n_vis = max(1, n_chars - len(_SPACE_RE.findall(text)))
    n_digit = len(_DIGIT_RE.findall(text))
    n_symbol = len(_SYMBOL_RE.findall(text))
    repetition = 1.0
    if len(words) >= 6:
        grams = list(zip(words, words[1:], words[2:], strict=False))
        repetition = _ramp(1 - len(set(grams)) / len(grams), 0.20, 0.70)
    lines_score = 1.0
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if len(lines) >= 3:
        lines_score = _ramp(1 - len(set(lines)) / len(lines), 0.30, 0.80)
    comps = {
        "length": round(length, 4),
        "symbols": round(_ramp(n_symbol / n_vis, 0.30, 0.80), 4),
        "digits": round(_ramp(n_digit / n_vis, 0.30, 0.80), 4),
        "repetition": round(repetition, 4),
        "lines": round(lines_score, 4),
    }
    score = 1.0
    for v in comps.values():
        score *= v
    return {"score": round(score, 4), "components": comps}


# Scripts used by one language only; Latin/Cyrillic/Arabic/Devanagari need more evidence.
_SCRIPT_LANG = {"HANGUL": "ko", "HIRAGANA": "ja", "KATAKANA": "ja", "THAI": "th", "GREEK": "el",
                "HEBREW": "he", "ARMENIAN": "hy", "GEORGIAN": "ka", "BENGALI": "bn", "TAMIL": "ta"}
# The most frequent function words; enough to tell these apart on a sentence or two.
_STOPWORDS = {
    "en": "the and to of a in is you that it for i on with this be are my your have not".split(),
    "fr": "le la les de des et est un une pour que qui dans pas ne vous je il sur au".split(),
    "de": "der die das und ist nicht ich sie zu den mit ein eine von auf es für auch".split(),
    "es": "el la los las de y que en un una es por para con no se lo del su".split(),
    "it": "il lo la di e che un una per non è sono con del della gli le si".split(),
    "pt": "o a os as de e que em um uma para não com do da se por mais".split(),
    "nl": "de het een en van is dat niet ik je op te zijn met voor er".split(),
}
_STOP_SETS = {lang: frozenset(ws) for lang, ws in _STOPWORDS.items()}


def script_of(text: str, sample: int = 400) -> str | None:
    """The dominant Unicode script among the first letters (e.g. LATIN, CYRILLIC, DEVANAGARI)."""
    head = text[:sample]
    if head.isascii():
        return "LATIN" if any(c.isalpha() for c in head) else None
    counts: dict[str, int] = {}
    for ch in head:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            script = name.split(" ", 1)[0] if name else ""
            if script == "CJK":
                script = "HAN"
            counts[script] = counts.get(script, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def guess_language(text: str) -> tuple[str | None, str | None]:
    """(language code or None, script). Only answers when the evidence is clear."""
    script = script_of(text)
    if script in _SCRIPT_LANG:
        return _SCRIPT_LANG[script], script
    if script != "LATIN":
        return None, script
    words = _WORD_RE.findall(text[:2000].casefold())
    if len(words) < 4:
        return None, script
    uniq = set(words)
    hits = sorted(((len(uniq & s), lang) for lang, s in _STOP_SETS.items()), reverse=True)
    (best, lang), (second, _) = hits[0], hits[1]
    share = sum(w in _STOP_SETS[lang] for w in words) / len(words)  # running text is >= ~0.2
    if best >= 2 and best >= 2 * second and share >= 0.12:
        return lang, script
    return None, script
