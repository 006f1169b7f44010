"""Duplicate detection: exact (hash of the normalised text) and near (MinHash + LSH, datasketch).

The first occurrence is kept; later ones are duplicates of it. Shingles are character or word
n-grams of the casefolded, whitespace-collapsed text, hashed with CRC-32 so that results are
the same in every run (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from .text import dedup_key


def exact_key(text: str, extra: str = "") -> str:
    """sha256 of the dedup form of the text (plus e.g. media paths that make rows distinct)."""
    return hashlib.sha256((dedup_key(text) + "\x00" + extra).encode("utf-8")).hexdigest()


def shingles(text: str, kind: str = "char", size: int = 5) -> set[bytes]:
    """Distinct n-grams of the dedup form. "char" n-grams are taken over the UTF-8 bytes (the
    same as characters for ASCII text, and one encode per document instead of per n-gram)."""
    norm = dedup_key(text)
    if kind == "word":
        words = norm.split(" ")
        grams = (" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1)))
        return {g.encode("utf-8") for g in grams if g}
    data = norm.encode("utf-8")
    return {data[i : i + size] for i in range(max(1, len(data) - size + 1))} if data else set()


def shingle_hashes(text: str, kind: str = "char", size: int = 5) -> list[int]:
    """CRC-32 of each distinct shingle: deterministic across runs and processes."""
    return [zlib.crc32(g) for g in shingles(text, kind, size)]


def _passthrough(value: int) -> int:
    return value


class NearDupIndex:
    """Feed documents in order; ``check_and_add`` returns the id of an earlier near-duplicate.

    A candidate from the LSH buckets counts only if the MinHash estimate of the Jaccard
    similarity with it reaches the threshold, which weeds out bucket collisions.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, kind: str = "char",
                 size: int = 5, min_shingles: int = 8) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self.kind = kind
        self.size = size
        self.min_shingles = min_shingles
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: dict[str, np.ndarray] = {}
        # One seeded MinHash, cleared and refilled per document: the LSH keeps only the band
        # keys it derives at insert time, and we keep a copy of the signature.
        self._m = MinHash(num_perm=num_perm, seed=1, hashfunc=_passthrough, scheme="affine32")

    def signature(self, text: str):  # type: ignore[no-untyped-def]
        """The (reused) MinHash of the text, or None when it has too few shingles."""
        items = shingle_hashes(text, self.kind, self.size)
        if len(items) < self.min_shingles:
            return None
        m = self._m
        m.clear()
        m.update_batch(items)
        return m

    def check_and_add(self, doc_id: str, text: str) -> tuple[str | None, float]:
        """(id of the earlier near-duplicate or None, its estimated Jaccard)."""
        m = self.signature(text)
        if m is None:
            return None, 0.0
        best, best_sim = None, 0.0
        for cand in self._lsh.query(m):
            sim = float(np.mean(self._signatures[cand] == m.hashvalues))
            if sim >= self.threshold and sim > best_sim:
                best, best_sim = cand, sim
        if best is None:
            self._lsh.insert(doc_id, m)
            self._signatures[doc_id] = m.hashvalues.copy()
        return best, best_sim
