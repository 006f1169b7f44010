"""PII recognizers: email, phone, credit card (Luhn), IBAN (mod-97), IP; names/places via presidio.

Each recognizer is a regex that proposes candidates plus a validator that must accept them
(checksums where the format has one), so random digit runs are not reported. Overlapping
candidates are resolved by priority: checksum-validated types beat looser ones (a 16-digit card
number is not also reported as a phone number). Spans are ``[start, end)`` character offsets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from ..registry import Registry


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int
    recognizer: str
    score: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "start": self.start, "end": self.end,
                "recognizer": self.recognizer, "score": self.score}


@dataclass(frozen=True)
class Recognizer:
    type: str
    name: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool]
    priority: int
    # Cheap pre-check: skip the regex entirely on texts where this does not occur.
    needs: re.Pattern[str]
    # Optional: candidate sub-spans of a match to validate (longest first) when the whole fails.
    split: Callable[[str], list[tuple[int, int]]] | None = None


RECOGNIZERS: Registry[Recognizer] = Registry("PII recognizer")


_ANY_DIGIT = re.compile(r"\d")
_NON_DIGIT = re.compile(r"\D+")


def _digits(s: str) -> str:
    return _NON_DIGIT.sub("", s)


def luhn_ok(number: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Lengths of IBANs per country (ISO 13616 registry); others fall back to 15..34.
_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
}


def iban_ok(candidate: str) -> bool:
    """ISO 13616: country length, then mod-97 of the rearranged number must be 1."""
    iban = candidate.replace(" ", "").upper()
    want = _IBAN_LENGTHS.get(iban[:2])
    if (want is not None and len(iban) != want) or not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def card_ok(candidate: str) -> bool:
    digits = _digits(candidate)
    # Issuer ranges start 2-6 (Mastercard 2/5, Amex 3, Visa 4, Discover/UnionPay 6).
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def phone_ok(candidate: str) -> bool:
    digits = _digits(candidate)
    if not 9 <= len(digits) <= 15 or len(set(digits)) < 3:
        return False
    # A bare run of digits is a phone number only in national (0...) or international form.
    if candidate.isdigit() and not candidate.startswith("0"):
        return False
    return True


def ip_ok(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}\b"
)
_PHONE_RE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,2}(?:[ .-]?\d{2,4}){2,4}"  # +44 20 7946 0958, +1 (415) 555-0132
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}"  # (415) 555-0132
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-0132
    r"|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}"  # 020 7946 0958
    r"|0\d{9,10}"  # 08452810075
    r")(?!\d)"
)
_CARD_RE = re.compile(r"(?<![\d-])\d+(?:[ -]\d+)*(?![\d-])")


def digit_group_windows(run: str) -> list[tuple[int, int]]:
    """Contiguous runs of digit groups inside "1 6011 4716 7205 5016", longest first: a card
    number next to an unrelated number is still found."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
    spans = []
    for i in range(len(groups)):
        n = 0
        for j in range(i, len(groups)):
            n += groups[j][1] - groups[j][0]
            if n > 19:
                break
            if n >= 13:
                spans.append((groups[i][0], groups[j][1]))
    return sorted(spans, key=lambda sp: (sp[0] - sp[1], sp[0]))
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![:\w])"
)

for _rec in (
    Recognizer("email", "email_regex", _EMAIL_RE, lambda s: True, 40, re.compile("@")),
    Recognizer("credit_card", "card_luhn", _CARD_RE, card_ok, 50, _ANY_DIGIT, digit_group_windows),
    Recognizer("iban", "iban_mod97", _IBAN_RE, iban_ok, 50, re.compile(r"[A-Z]{2}\d\d")),
    Recognizer("ip_address", "ipv4", _IPV4_RE, ip_ok, 30, re.compile(r"\d\.\d")),
    Recognizer("ip_address", "ipv6", _IPV6_RE, ip_ok, 30, re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f:]")),
    Recognizer("phone", "phone_regex", _PHONE_RE, phone_ok, 20, _ANY_DIGIT),
):
    RECOGNIZERS.register(_rec.name)(_rec)


@lru_cache(maxsize=1)
def _presidio():  # type: ignore[no-untyped-def]
    try:
        from presidio_analyzer import AnalyzerEngine
    except ImportError:
        return None
    return AnalyzerEngine()


def presidio_available() -> bool:
    return _presidio() is not None


_PRESIDIO_TYPES = {"PERSON": "person", "LOCATION": "location"}


def _presidio_findings(text: str, types: set[str]) -> list[Finding]:
    engine = _presidio()
    if engine is None:
        return []
    wanted = [k for k, v in _PRESIDIO_TYPES.items() if v in types]
    return [
        Finding(_PRESIDIO_TYPES[r.entity_type], r.start, r.end, f"presidio_{r.entity_type.lower()}",
                round(float(r.score), 3))
        for r in engine.analyze(text=text, entities=wanted, language="en")
    ]


def detect(text: str, types: Iterable[str] | None = None) -> list[Finding]:
    """All PII findings in ``text`` (sorted by start, non-overlapping)."""
    wanted = set(types) if types is not None else {r.type for r in RECOGNIZERS._items.values()}
    candidates: list[tuple[int, Finding]] = []
    present: dict[re.Pattern[str], bool] = {}
    for rec in RECOGNIZERS._items.values():
        if rec.type not in wanted:
            continue
        if rec.needs not in present:
            present[rec.needs] = rec.needs.search(text) is not None
        if not present[rec.needs]:
            continue
        for m in rec.pattern.finditer(text):
            if rec.validate(m.group(0)):
                candidates.append((rec.priority, Finding(rec.type, m.start(), m.end(), rec.name)))
            elif rec.split is not None and m.end() - m.start() >= 13:
                taken: list[tuple[int, int]] = []
                for a, b in rec.split(m.group(0)):
                    if all(b <= x or a >= y for x, y in taken) and rec.validate(m.group(0)[a:b]):
                        taken.append((a, b))
                        f = Finding(rec.type, m.start() + a, m.start() + b, rec.name)
                        candidates.append((rec.priority, f))
    if wanted & set(_PRESIDIO_TYPES.values()):
        candidates += [(10, f) for f in _presidio_findings(text, wanted)]
    if not candidates:
        return []
    # Highest priority first, then the longer match; keep what does not overlap a kept one.
    candidates.sort(key=lambda pf: (-pf[0], pf[1].start - pf[1].end, pf[1].start))
    kept: list[Finding] = []
    for _, f in candidates:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def mask(text: str, findings: Iterable[Finding], template: str = "[{type}]") -> str:
    """Replace each finding's span with the template (``[EMAIL]`` …); spans must not overlap."""
    out = text
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        out = out[: f.start] + template.format(type=f.type.upper()) + out[f.end :]
    return out
