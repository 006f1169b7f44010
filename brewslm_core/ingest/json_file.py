"""JSON documents: an array of records, an object holding one, or nested groups (SQuAD).

Rules, in order:
- A top-level array streams item by item (ijson, bounded memory). Objects are rows; other items
  (positional triples) become ``col_0``, ``col_1``, ….
- A top-level object is read whole. ``json:PATH#a.b.c`` names the record path explicitly.
  Otherwise its list of records is used (the only list, else the longest list of objects, noted)
  and we descend while every record is a *group*: it holds exactly one non-empty list of
  objects (same key in every record) and at most one other field, a scalar (a title, a context).
  Each leaf record carries its groups' scalar fields; on a name clash the leaf's own value wins.
- A file that is really JSON Lines is read as JSON Lines (noted).
- Damaged files: every record that parses is kept; each unparseable stretch becomes ONE
  sentinel row (line number, raw text, parser error). A truncated file ends in one sentinel.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contracts import SentinelRow
from .base import Row, display_raw, has_surrogates, open_binary
from .encoding import detect_encoding
from .files import FileConnector
from .jsonl import JsonlConnector, as_row

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[\s,]*")


class _SkipBom:
    """File-like view that drops a leading UTF-8 byte order mark (ijson wants pure JSON)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        head = fh.read(3)
        self._head = b"" if head == codecs.BOM_UTF8 else head

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson probes the stream type with read(0)
        if self._head:
            head, self._head = self._head, b""
            if size < 0:
                return head + self._fh.read()
            return head + self._fh.read(max(0, size - len(head)))
        return self._fh.read(size)


def first_char_and_line(path: Path) -> tuple[str, bytes, bool]:
    """First non-space character, the first non-blank line, and whether more content follows."""
    with open_binary(path) as fh:
        head = fh.read(1 << 20)
        more = bool(fh.read(1))
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if not text:
        return "", b"", False
    newline = text.find(b"\n")
    first = text if newline < 0 else text[:newline]
    rest = b"" if newline < 0 else text[newline:].strip()
    return chr(text[0]), first, bool(rest) or (more and newline >= 0)


def looks_like_json_lines(path: Path) -> bool:
    """True when the first line is a whole JSON value and more values follow on later lines."""
    start, first, more = first_char_and_line(path)
    if start not in "{[" or not more:
        return False
    try:
        json.loads(first.decode("utf-8", errors="replace"))  # structure only: bytes may be cp1252
    except ValueError:
        return False
    return True


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _object_lists(record: dict[str, Any]) -> list[str]:
    return [
        k for k, v in record.items()
        if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)
    ]


# Lists that belong to a record rather than group records: never descended into.
RECORD_LISTS = frozenset({"answers", "answer", "spans", "entities", "labels", "tags", "messages",
                          "conversations", "turns", "ctxs", "positive_ctxs", "negative_ctxs",
                          "contexts", "passages", "tokens", "plausible_answers"})
_ROLE_KEYS = ("role", "from", "speaker", "author")
_CONTENT_KEYS = ("content", "value", "text")


def is_turn_list(value: Any) -> bool:
    """A list of chat turns: every item an object with a role key and a content key."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, dict) and any(k in t for k in _ROLE_KEYS)
        and any(k in t for k in _CONTENT_KEYS) for t in value)


def keyed_records(doc: dict[str, Any]) -> bool:
    """``{"utt1": {...}, "utt2": {...}}``: >= 2 object values that share their keys."""
    if len(doc) < 2 or not all(isinstance(v, dict) and v for v in doc.values()):
        return False
    keysets = [frozenset(v) for v in doc.values()]
    common = frozenset.intersection(*keysets)
    return bool(common) and all(len(common) >= 0.5 * len(k) for k in keysets)


def group_key(records: list[Any]) -> str | None:
    """The shared list key when every record is a group (see module doc), else None."""
    if not records or not all(isinstance(r, dict) for r in records):
        return None
    if any(k.lower() in RECORD_LISTS for k in _object_lists(records[0])):
        return None
    key: str | None = None
    for record in records:
        lists = _object_lists(record)
        if len(lists) != 1:
            return None
        others = [k for k in record if k != lists[0]]
        if len(others) > 1 or any(not _scalar(record[k]) for k in others):
            return None
        if key is None:
            key = lists[0]
        elif key != lists[0]:
            return None
    return key


def _carry(record: dict[str, Any], skip: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != skip and _scalar(v)}


def _leaf(carried: dict[str, Any], item: Any) -> dict[str, Any]:
    row = as_row(item)
    return {**carried, **row} if carried else row


class JsonConnector(FileConnector):
    kind = "json"

    def __init__(self, path: Path, locator: str, record_path: str | None = None) -> None:
        super().__init__(path, locator)
        self.record_path = record_path
        if record_path:
            self.note(f"record path {record_path}")

    # ---- dispatch -----------------------------------------------------------------------
    def _rows(self) -> Iterator[Row]:
        start, _, _ = first_char_and_line(self.path)
        if not start:
            self.pass_notes.append("empty file")
            return
        if not self.record_path and looks_like_json_lines(self.path):
            self.note("JSON Lines content in a .json file: read one value per line")
            yield from JsonlConnector(self.path, self.locator)._rows()
            return
        if start == "[" and not self.record_path and not self._wide():
            yield from self._stream_array()
        else:
            yield from self._whole_document()

    def _wide(self) -> bool:
        """UTF-16/32 text (with a BOM): the byte-level streaming parser cannot read it."""
        with open_binary(self.path) as fh:
            head = fh.read(4)
        return head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))

    # ---- streaming arrays ---------------------------------------------------------------
    def _stream_array(self) -> Iterator[Row]:
        import ijson

        emitted = 0
        try:
            with open_binary(self.path) as fh:
                for item in ijson.items(_SkipBom(fh), "item", use_float=True):
                    yield as_row(item)
                    emitted += 1
            return
        except (ijson.JSONError, UnicodeDecodeError, ValueError):
            pass  # damaged: re-read with the recovering parser, skipping rows already given
        self.note("damaged JSON: records that parse are kept, each broken stretch is one sentinel")
        skipped = 0
        for row in self._recover(self._read_text(), self._array_start):
            if not isinstance(row, SentinelRow) and skipped < emitted:
                skipped += 1
                continue
            yield row

    # ---- whole documents ----------------------------------------------------------------
    def _read_text(self) -> str:
        with open_binary(self.path) as fh:
            data = fh.read()
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding = "utf-16"
            return data.decode("utf-16", errors="surrogateescape")
        info = detect_encoding(self.path)
        if info.encoding not in ("utf-8", "utf-8-sig"):
            # JSON should be UTF-8, but files saved by older Windows tools are often cp1252.
            self.encoding = info.encoding
            for note in info.notes:
                self.note(note)
            return data.decode(info.encoding, errors="surrogateescape")
        return data.decode("utf-8-sig", errors="surrogateescape")

    def _whole_document(self) -> Iterator[Row]:
        text = self._read_text()
        try:
            doc = json.loads(text)
        except ValueError:
            self.note("damaged JSON: records that parse are kept, each broken stretch is one "
                      "sentinel")
            yield from self._recover(text, self._first_record_list)
            return
        if has_surrogates(text):
            self.note("undecodable bytes inside the document")
        if self.record_path:
            yield from self._walk_path(doc, self.record_path.split("."), {}, root=True)
            return
        if isinstance(doc, list):
            yield from (as_row(item) for item in doc)
            return
        if not isinstance(doc, dict):
            yield as_row(doc)
            return
        lists = [k for k, v in doc.items() if isinstance(v, list)]
        if keyed_records(doc):
            self.note(f"an object of {len(doc)} records keyed by id: one row each, the key "
                      "under 'id'")
            yield from ({"id": k, **v} if "id" not in v else {"key": k, **v}
                        for k, v in doc.items())
            return
        if not lists:
            self.note("a single JSON object: one row")
            yield doc
            return
        if any(is_turn_list(doc[k]) for k in lists):
            self.note("a single JSON object holding a conversation: one row")
            yield doc
            return
        if len(lists) == 1:
            key = lists[0]
        else:
            ranked = sorted(lists, key=lambda k: (bool(_object_lists({k: doc[k]})), len(doc[k])))
            key = ranked[-1]
            self.note(f"several lists at the top ({', '.join(lists)}): used {key!r}; "
                      f"name another with json:PATH#<key>")
        path = [key]
        records: list[Any] = doc[key]
        yield from self._flatten(records, path, {})

    def _flatten(self, records: list[Any], path: list[str], carried: dict[str, Any]
                 ) -> Iterator[Row]:
        key = group_key(records)
        if key is None:
            if len(path) > 1:
                self.note(f"flattened nested records along {'.'.join(path)}")
            yield from (_leaf(carried, r) for r in records)
            return
        for record in records:
            yield from self._flatten(record[key], [*path, key], {**carried, **_carry(record, key)})

    def _walk_path(self, node: Any, keys: list[str], carried: dict[str, Any], *, root: bool
                   ) -> Iterator[Row]:
        if isinstance(node, list):
            for item in node:
                yield from self._walk_path(item, keys, carried, root=False)
            return
        if not keys:
            yield _leaf(carried, node)
            return
        key, rest = keys[0], keys[1:]
        if not isinstance(node, dict) or key not in node:
            raw = json.dumps(node, ensure_ascii=False)
            yield SentinelRow(0, display_raw(raw), f"record has no key {key!r} on the record path",
                              self.locator)
            return
        nested = {} if root else {**carried, **_carry(node, key)}
        yield from self._walk_path(node[key], rest, nested, root=False)

    # ---- recovery -------------------------------------------------------------------------
    @staticmethod
    def _array_start(text: str) -> int | None:
        pos = text.find("[")
        return pos + 1 if pos >= 0 else None

    def _first_record_list(self, text: str) -> int | None:
        stripped = text.lstrip()
        if stripped.startswith("["):
            return self._array_start(text)
        match = re.search(r'"([^"\\]+)"\s*:\s*\[\s*(?=[{\[])', text)
        if not match:
            return None
        self.note(f"damaged top-level object: read the records of {match.group(1)!r}")
        return match.end()

    def _recover(self, text: str, find_start: Any) -> Iterator[Row]:
        start = find_start(text)
        if start is None:
            try:
                json.loads(text)
                detail = "not a JSON array or object of records"
            except ValueError as exc:
                detail = str(exc)
            yield SentinelRow(1, display_raw(text), f"invalid JSON: {detail}", self.locator)
            return
        # Records in pretty-printed files start at one indentation; resync on the same one.
        indent = None
        seen_keys: set[str] = set()
        pos = _WS.match(text, start).end()
        line_start = text.rfind("\n", 0, pos) + 1
        if line_start and text[line_start:pos].strip() == "":
            indent = text[line_start:pos]
        while pos < len(text):
            if text[pos] == "]":
                return
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except ValueError as exc:
                resume = self._resync(text, pos + 1, indent, seen_keys)
                stop = resume if resume is not None else len(text)
                line = text.count("\n", 0, pos) + 1
                yield SentinelRow(line, display_raw(text[pos:stop].rstrip(" \t\r\n,")),
                                  f"invalid JSON: {exc}", self.locator)
                if resume is None:
                    return
                pos = resume
                continue
            raw = text[pos:end]
            if has_surrogates(raw):
                yield SentinelRow(text.count("\n", 0, pos) + 1, display_raw(raw),
                                  "undecodable bytes in this record", self.locator)
            else:
                if isinstance(value, dict) and not seen_keys:
                    seen_keys.update(value)
                yield as_row(value)
            pos = _WS.match(text, end).end()

    @staticmethod
    def _resync(text: str, pos: int, indent: str | None, keys: set[str]) -> int | None:
        """Where the next whole record starts after a broken one, or None.

        Minified files give no indentation to go by, so a candidate must also look like the
        records seen so far (an object sharing a key with the first one)."""
        pattern = (
            re.compile(r"\n" + re.escape(indent) + r"(?=[{\[])") if indent is not None
            else re.compile(r"[}\]]\s*,\s*(?=[{\[])")
        )
        for match in pattern.finditer(text, pos):
            candidate = match.end()
            try:
                value, end = _DECODER.raw_decode(text, candidate)
            except ValueError:
                continue
            if keys and not (isinstance(value, dict) and keys.intersection(value)):
                continue
            after = _WS.match(text, end)
            if after.end() >= len(text) or text[end:after.end()].count(",") or \
                    text[after.end()] == "]":
                return candidate
        return None


def split_record_path(target: str) -> tuple[str, str | None]:
    """``file.json#data.paragraphs.qas`` -> (``file.json``, ``data.paragraphs.qas``)."""
    if "#" in target and not Path(target).expanduser().exists():
        base, _, frag = target.rpartition("#")
        if frag and "/" not in frag and base:
            return base, frag
    return target, None
