"""PII recognizers on real text (banking77, SQuAD contexts, ham SMS) with PII planted at known spans.

``plant_corpus`` and ``score`` are also used by benchmarks/bench_clean.py for its P/R table.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from brewslm_core.clean.pii import card_ok, detect, iban_ok, luhn_ok, mask

TYPES = ("email", "phone", "credit_card", "iban", "ip_address")


# ---- real text ---------------------------------------------------------------------------
def banking_texts(data: Path, split: str = "test") -> list[str]:
    with open(data / "banking77" / f"{split}.csv", encoding="utf-8", newline="") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def squad_contexts(data: Path) -> list[str]:
    doc = json.loads((data / "qa_squad" / "squad_v2_dev_Normans_subset.json").read_text("utf-8"))
    return [p["context"] for art in doc["data"] for p in art["paragraphs"]]


def sms(data: Path) -> list[tuple[str, str]]:
    out = []
    with open(data / "spam" / "SMSSpamCollection", encoding="utf-8") as fh:
        for line in fh:
            label, _, text = line.rstrip("\n").partition("\t")
            out.append((label, text))
    return out


# ---- PII values with valid checksums ------------------------------------------------------
def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def make_value(kind: str, rng: random.Random) -> str:
    if kind == "email":
        user = rng.choice(["anna.k", "j_smith", "m.rossi+shop", "lee2001", "x.y.z"])
        dom = rng.choice(["example.com", "mail.example.org", "uni-example.ac.uk", "ex.io"])
        return f"{user}{rng.randint(1, 999)}@{dom}"
    if kind == "phone":
        n = [rng.randint(0, 9) for _ in range(10)]
        return rng.choice([
            f"+44 20 {n[0]}{n[1]}{n[2]}{n[3]} {n[4]}{n[5]}{n[6]}{n[7]}",
            f"+1 (415) 555-0{n[0]}{n[1]}{n[2]}",
            f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
            f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
            f"07700 900{n[0]}{n[1]}{n[2]}",
            f"0845{''.join(map(str, n[:7]))}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
        ])
    if kind == "credit_card":
        prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
        num = _luhn_complete(prefix, length, rng)
        sep = rng.choice(["", " ", "-"])
        if length == 16 and sep:
            return sep.join(num[i : i + 4] for i in range(0, 16, 4))
        return num
    if kind == "iban":
        country, bban = rng.choice([
            ("DE", "".join(rng.choice("0123456789") for _ in range(18))),
            ("GB", "WEST" + "".join(rng.choice("0123456789") for _ in range(14))),
            ("FR", "".join(rng.choice("0123456789") for _ in range(23))),
            ("NL", "ABNA" + "".join(rng.choice("0123456789") for _ in range(10))),
        ])
        iban = _iban(country, bban)
        if rng.random() < 0.5:  # printed form, groups of four
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban
    if kind == "ip_address":
        if rng.random() < 0.8:
            return ".".join(str(rng.randint(1, 254)) for _ in range(4))
        return f"2001:db8:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
    raise ValueError(kind)


def plant(text: str, value: str, rng: random.Random) -> tuple[str, int]:
    """Insert value at a word boundary; returns (new text, start of value)."""
    cuts = [0] + [i + 1 for i, c in enumerate(text) if c == " "]
    k = rng.choice(cuts)
    lead = rng.choice(["", "contact ", "ref: ", "send to "])
    new = text[:k] + lead + value + " " + text[k:]
    return new, k + len(lead)


def plant_corpus(texts: list[str], seed: int = 7, share: float = 0.5
                 ) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """Plant one PII value (type chosen round-robin) into ``share`` of the texts."""
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(texts):
        if rng.random() >= share:
            out.append((text, []))
            continue
        kind = TYPES[i % len(TYPES)]
        value = make_value(kind, rng)
        new, start = plant(text, value, rng)
        out.append((new, [(kind, start, start + len(value))]))
    return out


def score(corpus: list[tuple[str, list[tuple[str, int, int]]]]) -> dict[str, dict[str, float]]:
    """Per type: planted, found, true positives (exact span), precision, recall."""
    table = {t: {"planted": 0, "found": 0, "tp": 0} for t in TYPES}
    for text, planted in corpus:
        found = {(f.type, f.start, f.end) for f in detect(text, TYPES)}
        for t in TYPES:
            want = {p for p in planted if p[0] == t}
            got = {f for f in found if f[0] == t}
            table[t]["planted"] += len(want)
            table[t]["found"] += len(got)
            table[t]["tp"] += len(want & got)
    for row in table.values():
        row["precision"] = row["tp"] / row["found"] if row["found"] else 1.0
        row["recall"] = row["tp"] / row["planted"] if row["planted"] else 1.0
    return table


# ---- tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_texts(shared_data: Path) -> list[str]:
    ham = [t for label, t in sms(shared_data) if label == "ham"]
    return banking_texts(shared_data)[:1500] + squad_contexts(shared_data) + ham[:1500]


def test_recall_and_precision_per_recognizer(real_texts):
    corpus = plant_corpus(real_texts, seed=11)
    table = score(corpus)
    for t in TYPES:
        assert table[t]["planted"] >= 100, (t, table[t])
        assert table[t]["recall"] >= 0.97, (t, table[t])
        assert table[t]["precision"] >= 0.97, (t, table[t])


def test_few_false_positives_on_untouched_real_text(shared_data):
    # Banking queries and Wikipedia paragraphs hold no personal data; at most 3 hits allowed.
    texts = banking_texts(shared_data) + squad_contexts(shared_data)
    hits = [(t, t[f.start:f.end], f.type) for t in texts for f in detect(t)]
    assert len(texts) > 3000
    assert len(hits) <= 3, hits[:10]


def test_real_spam_phone_numbers_are_found(shared_data):
    # Spam SMS carry real premium-rate numbers such as 08452810075: a phone recognizer must see them.
    spam = [t for label, t in sms(shared_data) if label == "spam"]
    first = "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121"
    text = next(t for t in spam if t.startswith(first))
    assert [(f.type, text[f.start:f.end]) for f in detect(text)] == [("phone", "08452810075")]


def test_checksums_reject_near_misses():
    rng = random.Random(3)
    for _ in range(200):
        card = make_value("credit_card", rng).replace(" ", "").replace("-", "")
        assert card_ok(card)
        bad = card[:-1] + str((int(card[-1]) + 1) % 10)
        assert not card_ok(bad)
        assert not [f for f in detect(f"pay with {bad} today") if f.type == "credit_card"]
        iban = make_value("iban", rng)
        assert iban_ok(iban)
        compact = iban.replace(" ", "")
        broken = compact[:2] + f"{(int(compact[2:4]) + 1) % 100:02d}" + compact[4:]
        assert not iban_ok(broken)
    assert iban_ok("GB82 WEST 1234 5698 7654 32")  # the ISO 13616 example
    assert not detect("version 1.2.3.400 and time 12:30:45 and year 1066-1100")


def test_card_is_not_also_a_phone_and_mask_replaces_exact_spans():
    text = "card 4111 1111 1111 1111, mail a.b@example.com, ip 10.0.0.7."
    found = detect(text)
    assert [(f.type, text[f.start:f.end]) for f in found] == [
        ("credit_card", "4111 1111 1111 1111"),
        ("email", "a.b@example.com"),
        ("ip_address", "10.0.0.7"),
    ]
    assert mask(text, found) == "card [CREDIT_CARD], mail [EMAIL], ip [IP_ADDRESS]."
    assert detect(text, ["email"])[0].type == "email" and len(detect(text, ["email"])) == 1
