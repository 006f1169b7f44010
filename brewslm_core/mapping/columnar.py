"""The column-wise dry run for flat shapes (classification, text, alpaca, prompt_completion) of
JSON Lines files: DuckDB reads and checks the mapped fields of every row at once, and every row
still gets its verdict (accepted, or rejected with its reason code), the same as the per-row path.

How a row is judged:
- DuckDB extracts the mapped fields of each line (``read_ndjson_objects``, file order kept with
  ORDINALITY). A row whose fields are all strings, integers or booleans (optional ones may be
  absent) is "clean": its empty-text / label-set checks and its whole-record duplicate key
  (``record_key.canonical`` rebuilt in SQL) are computed in SQL.
- Any other row (a float, a null, a list, a missing required field, a key written twice) is
  read by the JSON Lines reader and goes through the real per-row mapper in Python, so odd values are
  judged by the one implementation. Its verdict and key join the clean rows' before duplicates are ranked.
- Duplicates: the first row with a key wins (row order), keys already committed lose.
- The report's examples and accepted sample are re-mapped in Python from the rows themselves,
  so their records, details and raw rows are exactly what the per-row path would give.

It declines (returns None, and the caller uses the per-row path) when it cannot promise the
same result: not a plain UTF-8 JSON Lines file, a line DuckDB cannot parse (sentinel rows),
nested field paths, options it does not implement (label_names …).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contracts import DryRunReport, ReasonGroup, RejectedRow, TransformedRow
from ..contracts.shapes import hash_bytes
from .fields import RowReject
from .mappers import MAPPERS, reset_media_cache
from .record_key import canonical

FLAT_SHAPES = frozenset({"classification", "text", "alpaca", "prompt_completion"})
# canonical field -> required?; a mapped text_pair is required like text
FIELDS: dict[str, dict[str, bool]] = {
    "classification": {"text": True, "label": True, "text_pair": True},
    "text": {"text": True},
    "alpaca": {"instruction": True, "input": False, "output": True, "system": False},
    "prompt_completion": {"prompt": True, "completion": True, "system": False},
}
OPTIONS: dict[str, frozenset[str]] = {"classification": frozenset({"label_set"})}
# JSON types whose text DuckDB spells as Python's as_text does (floats are left to Python).
_PLAIN = "('VARCHAR', 'BIGINT', 'UBIGINT', 'BOOLEAN')"
_WS = "".join(chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace())
_WS_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WS) + "]"


@dataclass(frozen=True)
class Verdict:
    row_index: int
    reason: str | None  # None: accepted
    first: int | None  # a duplicate's earlier row in this import (None: already committed)


def _eligible(conn: Any, shape: str, fmap: dict[str, str], opts: dict[str, Any]) -> Path | None:
    if shape not in FLAT_SHAPES or getattr(conn, "kind", None) != "jsonl":
        return None
    path = getattr(conn, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return None
    allowed = FIELDS[shape]
    if not set(fmap) <= set(allowed) or any(r and k not in fmap for k, r in allowed.items()
                                            if k != "text_pair"):
        return None
    for source in fmap.values():
        if (not source or any(c in source for c in '."\\') or source == "value"
                or (source.startswith("col_") and source[4:].isdigit())):
            return None
    if not set(opts) <= OPTIONS.get(shape, frozenset()):
        return None
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"\xef\xbb\xbf" or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None  # compressed, or a byte order mark: the per-row reader handles those
    return path


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _s(expr: str) -> str:
    """SQL for canonical() of a string expression."""
    return f"('s' || length({expr}) || ':' || {expr})"


_WS_POINTS = ", ".join(str(ord(c)) for c in _WS)


def _blank(expr: str) -> str:
    """Whitespace only, as Python's str.strip() sees it; the regex only runs on rows that start
    with whitespace."""
    return (f"({expr} = '' OR (unicode({expr}) IN ({_WS_POINTS}) AND "
            f"regexp_full_match({expr}, '{_WS_CLASS}*')))")


def _strip(expr: str) -> str:
    return (f"(CASE WHEN unicode({expr}) IN ({_WS_POINTS}) OR unicode(right({expr}, 1)) IN "
            f"({_WS_POINTS}) THEN regexp_replace({expr}, '^{_WS_CLASS}+|{_WS_CLASS}+$', '', 'g') "
            f"ELSE {expr} END)")


def _message(role: str, content: str) -> str:
    return f"('{{s7:content' || {_s(content)} || 's4:role' || {_s(_lit(role))} || '}}')"


def _record_sql(shape: str, col: dict[str, str]) -> tuple[list[str], str]:
    """(checks in mapper order as (reason, condition) SQL pairs, canonical record SQL)."""
    req = [n for n, r in FIELDS[shape].items() if r and n in col]
    checks = [("empty_text", _blank(col[n])) for n in req]
    if shape == "classification":
        label = _strip(col["label"])
        parts = ["'s5:label'", _s(label), "'s4:text'", _s(col["text"])]
        if "text_pair" in col:
            parts += ["'s9:text_pair'", _s(col["text_pair"])]
        return checks, "('{' || " + " || ".join(parts) + " || '}')"
    if shape == "text":
        return checks, f"('{{s4:text' || {_s(col['text'])} || '}}')"
    first, second = ("instruction", "output") if shape == "alpaca" else ("prompt", "completion")
    user = col[first]
    if "input" in col:
        user = (f"(CASE WHEN {col['input']} IS NULL OR {_blank(col['input'])} THEN {col[first]} "
                f"ELSE {col[first]} || chr(10) || chr(10) || {col['input']} END)")
    turns = _message("user", user) + " || " + _message("assistant", col[second])
    if "system" in col:
        system = (f"(CASE WHEN {col['system']} IS NULL OR {_blank(col['system'])} THEN '' "
                  f"ELSE {_message('system', col['system'])} END)")
        turns = f"{system} || {turns}"
    return checks, f"('{{s8:messages[' || {turns} || ']}}')"


def _keys(canon: str, with_md5: bool) -> str:
    """SQL for a row's key columns from its canonical string (NULL for rejected rows)."""
    cols = f"hash({canon}) AS h1, hash({canon} || chr(1)) AS h2"
    return cols + (f", md5({canon}) AS md5" if with_md5 else "")


def _connect():
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def row_verdicts(conn: Any, shape: str, fmap: dict[str, str], opts: dict[str, Any],
                 committed: set[bytes] | None = None) -> list[Verdict] | None:
    """Every row's verdict in row order, or None when the columnar path does not apply."""
    run = _run(conn, shape, fmap, opts, committed or set())
    if run is None:
        return None
    con, _ = run
    rows = con.execute("SELECT idx, reason, first FROM verdict ORDER BY idx").fetchall()
    return [Verdict(int(i), r, None if f is None else int(f)) for i, r, f in rows]


def _run(conn: Any, shape: str, fmap: dict[str, str], opts: dict[str, Any],
         committed: set[bytes]):
    import duckdb
    import pyarrow as pa

    path = _eligible(conn, shape, fmap, opts)
    if path is None:
        return None
    names = list(fmap)
    con = _connect()
    paths = "[" + ", ".join(_lit(f'$."{fmap[n]}"') for n in names) + "]"
    required = FIELDS[shape]
    clean = " AND ".join(
        f"coalesce(json_type(j[{i + 1}]) IN {_PLAIN}, false)" if required[n]
        else f"coalesce(j[{i + 1}] IS NULL OR json_type(j[{i + 1}]) IN {_PLAIN}, false)"
        for i, n in enumerate(names))
    # A key written twice in one object: Python keeps the last value, DuckDB the first, so such
    # rows (and rows where the key's spelling also appears as a value) go to the mapper.
    once = " AND ".join(f"len(string_split(json, {_lit(q)})) <= 2"
                        for q in (f'"{fmap[n]}"' for n in names))
    strings = ", ".join(f"CASE WHEN clean THEN j[{i + 1}]->>'$' END AS s{i}"
                        for i in range(len(names)))
    col = {n: f"s{i}" for i, n in enumerate(names)}
    checks, record = _record_sql(shape, col)
    cases = " ".join(f"WHEN {cond} THEN '{reason}'" for reason, cond in checks)
    label_set = opts.get("label_set")
    if label_set:
        allowed = ", ".join(_lit(str(x)) for x in label_set)
        cases += f" WHEN {_strip(col['label'])} NOT IN ({allowed}) THEN 'label_not_in_set'"
    reason = f"CASE {cases} ELSE NULL END"
    # One pass: the strings are never stored, only each row's verdict and key. Within the
    # import the key is two 64-bit hashes of the canonical record (grouping integers is cheap);
    # against rows committed before, the record_key (MD5) is only built when there are any.
    canon = f"({_lit(shape)} || chr(0) || {record})"
    keys = _keys("canon", bool(committed))
    try:
        con.execute(f"""CREATE TEMP TABLE judged AS
            SELECT idx, clean, reason, {keys} FROM
            (SELECT idx, clean, reason, CASE WHEN reason IS NULL THEN {canon} END AS canon FROM
             (SELECT *, CASE WHEN clean THEN {reason} END AS reason FROM
              (SELECT idx, clean, {strings} FROM
               (SELECT idx, j, coalesce({clean} AND {once}, false) AS clean FROM
                (SELECT ordinality - 1 AS idx, json, json_extract(json, {paths}) AS j
                 FROM read_ndjson_objects(?) WITH ORDINALITY)))))""", [str(path)])
    except duckdb.Error:
        return None  # a line that is not JSON (a sentinel row), bad UTF-8 …: per-row path
    # Rows with any other value go through the real mapper.
    mapper = MAPPERS.get(shape)
    reset_media_cache()
    odd_idx, odd_reason, odd_canon = [], [], []
    wanted = [int(i) for (i,) in con.execute(
        "SELECT idx FROM judged WHERE NOT clean ORDER BY idx").fetchall()]
    # Read by the JSON Lines reader itself: DuckDB re-serialises numbers (big ints, floats).
    for idx, value in _full_rows(path, wanted).items():
        row = value if isinstance(value, dict) else {}
        odd_idx.append(idx)
        try:
            rec = mapper(row, fmap, opts, getattr(conn, "base_dir", None))
        except RowReject as rej:
            odd_reason.append(rej.reason)
            odd_canon.append(None)
            continue
        odd_reason.append(None)
        odd_canon.append(f"{shape}\x00{canonical(rec)}")
    odd = pa.table({"idx": pa.array(odd_idx, pa.int64()), "reason": pa.array(odd_reason, pa.string()),
                    "canon": pa.array(odd_canon, pa.string())})
    old = pa.table({"md5": pa.array(sorted(k.hex() for k in committed), pa.string())})
    con.register("odd_rows", odd)
    con.register("old", old)
    known = ("(SELECT DISTINCT a.h1, a.h2 FROM allr a JOIN old o ON a.md5 = o.md5)" if committed
             else "(SELECT 0::UBIGINT AS h1, 0::UBIGINT AS h2 WHERE false)")
    # Only keys seen twice (or committed before) need ranking: small tables to join.
    con.execute(f"""CREATE TEMP TABLE verdict AS
        WITH allr AS (SELECT idx, reason, h1, h2{", md5" if committed else ""} FROM judged
                      WHERE clean UNION ALL
                      SELECT idx, reason, {_keys("canon", bool(committed))} FROM odd_rows),
        known AS {known},
        twice AS (SELECT h1, h2, min(idx) AS first FROM allr
                  WHERE reason IS NULL AND (h1, h2) NOT IN (SELECT (h1, h2) FROM known)
                  GROUP BY h1, h2 HAVING count(*) > 1)
        SELECT a.idx, COALESCE(a.reason, CASE WHEN k.h1 IS NOT NULL OR t.first < a.idx
                                             THEN 'duplicate_row' END) AS reason,
               CASE WHEN t.first < a.idx THEN t.first END AS first
        FROM allr a LEFT JOIN twice t ON a.h1 = t.h1 AND a.h2 = t.h2
        LEFT JOIN known k ON a.h1 = k.h1 AND a.h2 = k.h2""")
    return con, names


def _full_rows(path: Path, wanted: Iterable[int]) -> dict[int, Any]:
    """The source rows at these indices (blank lines are not rows), read as the JSONL reader does."""
    from ..ingest import open_source

    wanted = set(wanted)
    out: dict[int, Any] = {}
    if not wanted:
        return out
    last = max(wanted)
    for index, row in enumerate(open_source(f"jsonl:{path}").load()):
        if index in wanted:
            out[index] = row
        if index >= last:
            break
    return out


def fast_dry_run(conn: Any, shape: str, fmap: dict[str, str], opts: dict[str, Any],
                 committed: set[bytes], *, config: str, dropped: tuple[str, ...],
                 sample_size: int, examples_per_reason: int) -> DryRunReport | None:
    """The dry run report through the columnar path, or None when it does not apply."""
    run = _run(conn, shape, fmap, opts, committed)
    if run is None:
        return None
    con, _ = run
    total = con.execute("SELECT count(*) FROM verdict").fetchone()[0]
    by_reason = dict(con.execute("SELECT reason, count(*) FROM verdict WHERE reason IS NOT NULL "
                                 "GROUP BY reason ORDER BY min(idx)").fetchall())
    shown = [r for r in by_reason if r not in dropped]
    examples_at: list[tuple[str, int, int | None]] = []
    if shown and examples_per_reason > 0:
        examples_at = [(r, int(i), f) for r, i, f in con.execute(
            """SELECT reason, idx, first FROM (SELECT reason, idx, first, row_number() OVER
               (PARTITION BY reason ORDER BY idx) AS n FROM verdict WHERE reason IS NOT NULL)
               WHERE n <= ? ORDER BY idx""", [examples_per_reason]).fetchall() if r in shown]
    sample_at = [int(i) for (i,) in con.execute(
        "SELECT idx FROM verdict WHERE reason IS NULL ORDER BY idx LIMIT ?", [sample_size]
    ).fetchall()] if sample_size > 0 else []
    rows = _full_rows(conn.path, [i for _, i, _ in examples_at] + sample_at)
    con.close()
    mapper = MAPPERS.get(shape)
    reset_media_cache()
    base_dir = getattr(conn, "base_dir", None)
    sample = []
    for i in sample_at:
        record = mapper(rows[i], fmap, opts, base_dir)
        sample.append(TransformedRow(i, shape, record, hash_bytes(shape, record).hex()))
    examples: dict[str, list[RejectedRow]] = {}
    for reason, i, first in examples_at:
        if reason == "duplicate_row":
            detail = ("the same record is already committed in this project" if first is None
                      else f"the same record as row {first} of this import")
        else:
            try:
                mapper(rows[i], fmap, opts, base_dir)
                detail = reason  # pragma: no cover - the mapper always rejects these rows
            except RowReject as rej:
                detail = rej.detail
        examples.setdefault(reason, []).append(RejectedRow(i, reason, detail, rows[i]))
    groups = tuple(ReasonGroup(reason, count, tuple(examples.get(reason, [])))
                   for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
    accepted = total - sum(by_reason.values())
    return DryRunReport(
        locator=conn.locator, shape=shape, config_id=config, total=total, accepted=accepted,
        rejected=total - accepted, sentinel=by_reason.get("unparseable_row", 0),
        by_reason=by_reason, groups=groups, accepted_sample=tuple(sample),
        dropped_reasons=dropped,
    )
