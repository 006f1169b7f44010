"""CSV and TSV with the mess real files carry.

Rules (documented here because they decide what a row is):
- Encoding over the whole file (encoding.py). Line endings LF, CRLF or CR-only; NUL bytes kept.
- Blank lines and ``# comment`` lines before the header are skipped (noted, with their text).
  Blank lines later are skipped and counted in the notes.
- Delimiter: the one of ``,`` ``;`` ``\\t`` ``|`` that splits the sampled records most
  consistently into two or more cells (ties in that order). ``tsv:`` forces tab.
- Quoting: RFC 4180 (``"…"`` with ``""`` escapes, newlines allowed inside). A backslash escape
  ``\\"`` is honoured when the file uses it; a space before an opening quote is skipped when the
  file writes ``, "x"``. When RFC quoting would merge lines (a quote that opens a cell but never
  closes it properly) while reading quotes literally splits every line the same way, quotes are
  literal text (QUOTE_NONE): e.g. ``label<TAB>text`` files whose messages start with ``"``.
- Header: detected by its cells (name-like, not repeated in the column, non-numeric over
  numeric columns). Without one, keys are ``col_0``, ``col_1``, …. Header names have their
  whitespace collapsed; blank ones become ``col_<i>``, repeats ``name_2``, ``name_3``.
- Ragged rows: missing trailing cells are absent from the row; extra cells go, in order, to
  ``_extra`` (a list). Nothing is dropped. Values stay strings.
- A record holding undecodable bytes becomes a sentinel row.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..contracts import SentinelRow
from .base import (
    Row,
    binary_problem,
    display_raw,
    has_surrogates,
    open_binary,
    placeholder_problem,
    read_head,
    text_stream,
)
from .encoding import detect_encoding
from .files import FileConnector

DELIMITERS = (",", "\t", ";", "|")
SAMPLE_CHARS = 256 * 1024
QUOTE_CHECK_CHARS = 4 * 1024 * 1024
_NAME_LIKE = re.compile(r"[^\W\d][\w .\-/()%\[\]#]{0,63}")
_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d[\d.,]*|\.\d+)([eE][+-]?\d+)?%?")


@dataclass(frozen=True)
class Layout:
    encoding: str
    clean: bool  # every byte decoded: no per-row undecodable check needed
    has_nul: bool
    skip_lines: int
    delimiter: str
    quoting: int
    skipinitialspace: bool
    escapechar: str | None
    has_header: bool
    names: tuple[str, ...]


def _dialect(delimiter: str, quoting: int = csv.QUOTE_MINIMAL, skipinitialspace: bool = False,
             escapechar: str | None = None) -> dict:
    return {
        "delimiter": delimiter,
        "quotechar": '"',
        "doublequote": True,
        "quoting": quoting,
        "skipinitialspace": skipinitialspace,
        "escapechar": escapechar,
        "strict": False,
    }


def _records(text_lines: list[str], dialect: dict) -> list[list[str]]:
    out = []
    try:
        for rec in csv.reader(text_lines, **dialect):
            if rec and not (len(rec) == 1 and not rec[0].strip()):
                out.append(rec)
    except csv.Error:
        pass
    return out


def consistency(records: list[list[str]]) -> tuple[float, int]:
    """(share of records with the most common cell count, that count)."""
    if not records:
        return 0.0, 0
    counts = Counter(len(r) for r in records)
    width, n = counts.most_common(1)[0]
    return n / len(records), width


def _split_lines(text: str) -> list[str]:
    """Physical lines with their endings, split on LF, CRLF and CR only (not VT/FF)."""
    return io.StringIO(text, newline="").readlines()


def choose_delimiter(lines: list[str]) -> str:
    best, best_key = ",", (-1.0, 0)
    for delim in DELIMITERS:
        share, width = consistency(_records(lines[:400], _dialect(delim)))
        if width < 2:
            continue
        key = (round(share, 3), min(width, 2))
        if key > best_key:
            best, best_key = delim, key
    return best


def _record_count(lines: list[str], dialect: dict) -> int:
    try:
        return sum(1 for _ in csv.reader(lines, **dialect))
    except csv.Error:
        return -1


def choose_quoting(lines: list[str], delimiter: str, base: dict) -> int:
    if not any('"' in line for line in lines):
        return csv.QUOTE_MINIMAL
    if _record_count(lines, base) == len(lines):
        return csv.QUOTE_MINIMAL  # every record is one line: nothing merged, RFC quoting is right
    literal_dialect = {**base, "quoting": csv.QUOTE_NONE, "escapechar": None}
    head_share, head_width = consistency(_records(lines[:1000], literal_dialect))
    if head_width < 2 or head_share < 0.999:
        return csv.QUOTE_MINIMAL  # literal quotes split lines unevenly: they are real quoting
    minimal = _records(lines, base)
    literal = _records(lines, literal_dialect)
    if len(minimal) >= len(literal):
        return csv.QUOTE_MINIMAL
    lit_share, lit_width = consistency(literal)
    min_share, _ = consistency(minimal)
    if lit_width >= 2 and lit_share >= 0.999 and lit_share >= min_share:
        return csv.QUOTE_NONE
    return csv.QUOTE_MINIMAL


def header_score(first: list[str], rest: list[list[str]]) -> int:
    """> 0 when the first record reads as column names rather than data."""
    if len(first) == 1:
        # One column: a name only stands out above values of another form (sentences,
        # numbers); over a plain list of words ("circle", "red", …) the first line is data.
        values = [r[0].strip() for r in rest if r and r[0].strip()]
        if len(first[0].split()) > 2 or not values:
            return -1
        sentences = sum(len(v.split()) > 2 for v in values) / len(values)
        numbers = sum(bool(_NUMBER.fullmatch(v)) for v in values) / len(values)
        if max(sentences, numbers) < 0.5 or first[0].strip() in values:
            return -1
    score = 0
    for i, cell in enumerate(first):
        value = cell.strip()
        column = [r[i].strip() for r in rest if i < len(r)]
        filled = [v for v in column if v]
        if not value:
            continue
        if filled and value in set(filled):
            score -= 2  # a name does not repeat as a value of its own column
            continue
        numeric = sum(bool(_NUMBER.fullmatch(v)) for v in filled)
        if _NUMBER.fullmatch(value):
            # A number over numbers of the same form is data; a year over "23.824" is a name.
            same_form = sum(bool(_INT.fullmatch(v)) == bool(_INT.fullmatch(value)) and
                            bool(_NUMBER.fullmatch(v)) for v in filled)
            if not filled or same_form / len(filled) > 0.5:
                score -= 2
            continue
        if filled and numeric / len(filled) > 0.8:
            score += 2
        if _NAME_LIKE.fullmatch(" ".join(value.split())):
            score += 1
        elif len(value) > 64:
            score -= 1
    return score


def clean_names(raw: list[str]) -> tuple[str, ...]:
    names: list[str] = []
    seen: Counter[str] = Counter()
    for i, cell in enumerate(raw):
        name = " ".join(cell.split()) or f"col_{i}"
        seen[name] += 1
        if seen[name] > 1:
            candidate = f"{name}_{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}_{seen[name]}"
            seen[candidate] += 1
            name = candidate
        names.append(name)
    return tuple(names)


class DelimitedConnector(FileConnector):
    kind = "csv"
    text_values = True

    def __init__(self, path: Path, locator: str, kind: str = "csv",
                 delimiter: str | None = None) -> None:
        super().__init__(path, locator)
        self.kind = kind
        self.forced_delimiter = delimiter
        self._layout: Layout | None = None
        head = read_head(path, 8192)
        if placeholder_problem(head) is None and binary_problem(head) is None:
            self.layout  # noqa: B018 - detect now so ``kind`` (csv or tsv) is right from the start

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = self._detect()
        return self._layout

    def _open_text(self, encoding: str):
        return text_stream(open_binary(self.path), encoding)

    def _detect(self) -> Layout:
        encoding, notes, clean, has_nul = detect_encoding(self.path)
        for note in notes:
            self.note(note)
        self.encoding = encoding
        with self._open_text(encoding) as fh:
            head = fh.read(QUOTE_CHECK_CHARS)
            truncated = bool(fh.read(1))
        lines = _split_lines(head)
        if truncated and lines:
            lines.pop()  # the last line may be cut short
        skip = 0
        skipped: list[str] = []
        while skip < len(lines) and (not lines[skip].strip() or lines[skip].lstrip().startswith("#")):
            if lines[skip].strip():
                skipped.append(lines[skip].strip())
            skip += 1
        if skip:
            comments = f": {'; '.join(skipped)[:200]!r}" if skipped else ""
            self.note(f"skipped {skip} blank/comment line(s) before the header{comments}")
        body = lines[skip:]
        sample = body[:2000]
        delimiter = self.forced_delimiter or choose_delimiter(sample)
        if self.kind == "csv" and delimiter == "\t":
            self.kind = "tsv"
        sample_text = "".join(sample[:400])
        skipinitial = f'{delimiter} "' in sample_text
        escape = "\\" if '\\"' in sample_text and "\\\\" not in sample_text else None
        base = _dialect(delimiter, skipinitialspace=skipinitial, escapechar=escape)
        quoting = choose_quoting(body, delimiter, base)
        self.note(f"delimiter {delimiter!r}")
        if quoting == csv.QUOTE_NONE:
            self.note("quotes are literal text (QUOTE_NONE): RFC quoting would merge lines")
            escape = None
        if skipinitial:
            self.note("space after the delimiter skipped before quoted cells")
        if escape:
            self.note('backslash-escaped quotes (\\") honoured')
        dialect = _dialect(delimiter, quoting, skipinitial, escape)
        records = _records(sample[:300], dialect)
        first, rest = (records[0], records[1:200]) if records else ([], [])
        has_header = bool(first) and header_score(first, rest) > 0
        if has_header:
            names = clean_names(first)
            self.note("header detected")
            if tuple(" ".join(c.split()) for c in first) != names:
                self.note("header names cleaned (whitespace collapsed, blank/duplicate renamed)")
        else:
            width = max([len(first), consistency(records)[1]] if records else [0])
            names = tuple(f"col_{i}" for i in range(width))
            self.note("no header: columns named col_0, col_1, …")
        return Layout(encoding, clean, has_nul, skip, delimiter, quoting, skipinitial, escape,
                      has_header, names)

    def _rows(self) -> Iterator[Row]:
        layout = self.layout
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are data, not errors
        dialect = _dialect(layout.delimiter, layout.quoting, layout.skipinitialspace,
                           layout.escapechar)
        names = layout.names
        blank = ragged_short = ragged_long = with_nul = 0
        with self._open_text(layout.encoding) as fh:
            for _ in range(layout.skip_lines):
                fh.readline()
            reader = csv.reader(fh, **dialect)
            header_pending = layout.has_header
            line_before = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    line = layout.skip_lines + reader.line_num
                    yield SentinelRow(line, "", f"CSV error: {exc}", self.locator)
                    line_before = reader.line_num
                    continue
                first_line = layout.skip_lines + line_before + 1
                line_before = reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    if not header_pending:
                        blank += 1
                    continue
                if header_pending:
                    header_pending = False
                    continue
                if not layout.clean and any(has_surrogates(c) for c in cells):
                    yield SentinelRow(first_line, display_raw(layout.delimiter.join(cells)),
                                      f"undecodable bytes for encoding {layout.encoding}",
                                      self.locator)
                    continue
                row = dict(zip(names, cells, strict=False))
                if len(cells) > len(names):
                    row["_extra"] = cells[len(names):]
                    ragged_long += 1
                elif len(cells) < len(names):
                    ragged_short += 1
                if layout.has_nul and any("\x00" in c for c in cells):
                    with_nul += 1
                yield row
        if blank:
            self.pass_notes.append(f"{blank} blank line(s) skipped")
        if ragged_short:
            self.pass_notes.append(f"{ragged_short} short row(s): missing cells are absent")
        if ragged_long:
            self.pass_notes.append(f"{ragged_long} long row(s): extra cells kept under _extra")
        if with_nul:
            self.pass_notes.append(f"{with_nul} row(s) hold NUL bytes (kept)")
