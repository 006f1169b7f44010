"""Clean-stage throughput and PII recognizer precision/recall.

    python -m benchmarks.bench_clean                 # 100,000 documents
    python -m benchmarks.bench_clean --docs 20000

Documents are real rows of SMSSpamCollection and banking77 with variations (extra words, case,
markup/entities, planted PII, planted exact and near duplicates), committed through the store.
Each measurement runs in its own subprocess so its peak RSS is its own. Throughput is printed as
a ratio against a bare pass over the same committed rows (read + record_text + sha256), measured
in the same run. The PII table scores every recognizer against the spans the generator planted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from .common import peak_rss_mb, run_worker

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

METHODS = {
    "baseline_read_sha256": None,
    "clean_light": {"near_dup": False, "chunk": False},
    "clean_full": {},
}
EXTRA = "please asap today thanks urgent again now reply later ok fine sure".split()
MARKUP = ["&amp; ", "<b>", "</b> ", "&#128514; ", "  ", "\u00a0", "ﬁ"]


def base_texts() -> list[tuple[str, str]]:
    from tests.test_clean_pii import banking_texts, sms

    rows = [(label, text) for label, text in sms(SHARED)]
    rows += [("bank", t) for t in banking_texts(SHARED, "train")]
    return rows


def generate(n: int, seed: int = 13) -> tuple[list[dict], list[tuple[str, list]]]:
    """Records (classification shape) and, for rows built from non-spam text, (text, planted)."""
    from brewslm_core.clean.pii import detect
    from tests.test_clean_pii import make_value, plant

    rng = random.Random(seed)
    bases = base_texts()
    records: list[dict] = []
    scored: list[tuple[str, list]] = []
    kinds = ("email", "phone", "credit_card", "iban", "ip_address")
    for i in range(n):
        r = rng.random()
        if r < 0.04 and records:  # exact duplicate (case/spacing only)
            rec = records[rng.randrange(len(records))]
            records.append({"text": rec["text"].upper(), "label": rec["label"]})
            continue
        if r < 0.08 and records:  # near duplicate: one extra word
            rec = records[rng.randrange(len(records))]
            words = rec["text"].split(" ")
            words.insert(rng.randrange(len(words) + 1), rng.choice(EXTRA))
            records.append({"text": " ".join(words), "label": rec["label"]})
            continue
        label, text = bases[rng.randrange(len(bases))]
        text = f"{text} {' '.join(rng.sample(EXTRA, rng.randint(1, 4)))} #{i}"
        if rng.random() < 0.1:
            k = rng.randrange(len(text) + 1)
            text = text[:k] + rng.choice(MARKUP) + text[k:]
        planted: list = []
        if rng.random() < 0.2:
            kind = rng.choice(kinds)
            value = make_value(kind, rng)
            text, start = plant(text, value, rng)
            planted = [(kind, start, start + len(value))]
        if label != "spam" and not detect(text.replace(text[planted[0][1]:planted[0][2]], "")
                                          if planted else text):
            scored.append((text, planted))  # ground truth is complete for these rows
        records.append({"text": text, "label": label})
    return records, scored


def build_project(root: Path, n: int) -> tuple[Path, list[tuple[str, list]]]:
    from brewslm_core import Project
    from brewslm_core.mapping import store
    from brewslm_core.mapping.shapes import text_hash

    project = Project.create(root / "bench")
    records, scored = generate(n)
    rows = ({"import_id": "bench", "row_index": i, "shape": "classification",
             "task_profile": "classification", "config_id": "bench",
             "text_hash": text_hash("classification", rec), "record": rec}
            for i, rec in enumerate(records))
    store.append_commit(project, rows, {"import_id": "bench"})
    return project.root, scored


def worker(method: str, root: str) -> dict:
    """One measurement; heavy imports and the tokenizer load happen before the clock starts."""
    import hashlib

    from brewslm_core import Project
    from brewslm_core.clean import CleanConfig, clean
    from brewslm_core.mapping import store
    from brewslm_core.mapping.shapes import record_text

    project = Project.open(root)
    extra = METHODS[method]
    if extra is not None:
        import datasketch  # noqa: F401

        if extra.get("chunk", True):
            from brewslm_core.clean.chunk import load_tokenizer

            load_tokenizer()
    start = time.perf_counter()
    if extra is None:
        docs = 0
        for row in store.read_committed(project):
            hashlib.sha256(record_text(row["shape"], row["record"]).encode("utf-8")).hexdigest()
            docs += 1
        info: dict = {}
    else:
        report = clean(project, CleanConfig(**extra))
        docs = report.input_rows
        info = {"kept": report.kept_rows, "removed": report.removed_by_reason,
                "pii": report.pii_by_type, "chunks": report.chunks}
    seconds = time.perf_counter() - start
    return {"method": method, "docs": docs, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
            **info}


def run_method(method: str, root: Path) -> dict:
    return run_worker("bench_clean", method, str(root))


def pii_table(scored: list[tuple[str, list]]) -> None:
    from tests.test_clean_pii import score

    table = score(scored)
    print(f"\nPII recognizers on {len(scored):,} generated docs (planted spans, exact match)")
    print(f"{'type':<12} {'planted':>8} {'found':>8} {'tp':>8} {'precision':>10} {'recall':>8}")
    for kind, row in table.items():
        print(f"{kind:<12} {row['planted']:>8} {row['found']:>8} {row['tp']:>8} "
              f"{row['precision']:>10.4f} {row['recall']:>8.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="documents to clean")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "PROJECT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_clean_") as tmp:
        t0 = time.perf_counter()
        root, scored = build_project(Path(tmp), args.docs)
        print(f"built {args.docs:,} committed docs in {time.perf_counter() - t0:.1f} s")
        results = [run_method(m, root) for m in METHODS]
    base = results[0]
    base_rate = base["docs"] / base["seconds"]
    print(f"\n{'method':<22} {'docs':>9} {'seconds':>9} {'docs/s':>10} {'x baseline':>11} "
          f"{'peak RSS MB':>12}")
    for r in results:
        rate = r["docs"] / r["seconds"]
        print(f"{r['method']:<22} {r['docs']:>9,} {r['seconds']:>9.2f} {rate:>10,.0f} "
              f"{base_rate / rate:>10.1f}x {r['peak_rss_mb']:>12.0f}")
    for r in results[1:]:
        print(f"{r['method']}: kept {r['kept']:,}, removed {r['removed']}, PII {r['pii']}, "
              f"chunks {r['chunks']:,}")
    print("(x baseline = how many times longer than reading + hashing the same committed rows)")
    pii_table(scored)
    return 0


if __name__ == "__main__":
    sys.exit(main())
