"""``dir:`` folders of audio or images: one row per file, labelled from the layout or a sidecar.

Label rules, first that applies:
- a sidecar table (CSV, TSV, JSON Lines or JSON) at the top of the folder whose column names
  the files (relative path, file name or stem): rows follow the sidecar, one per sidecar row,
  its columns merged in; a sidecar row naming a missing file becomes a sentinel row; media files
  no sidecar row names follow as plain rows (noted);
- class folders: files spread over two or more sub-folders take the parent folder's name;
- a file name pattern: ``<label>_<speaker>_<n>`` (``0_george_3.wav`` -> label "0", speaker
  "george", take "3") or ``<label>_<n>`` / ``<label>-<n>``;
- otherwise no label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contracts import SentinelRow, SourceDescription
from .base import IngestError, Row, check_inside, display_raw
from .describe import describe_source
from .open import open_source

AUDIO = {".wav", ".flac", ".mp3", ".ogg"}
IMAGE = {".png", ".jpg", ".jpeg", ".webp"}
SIDECAR_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".ndjson"}
_SPEAKER_PATTERN = re.compile(r"(?P<label>[^_]+)_(?P<speaker>[^_]+)_(?P<take>\d+)")
_LABEL_PATTERN = re.compile(r"(?P<label>[A-Za-z][A-Za-z ]*?)[_-]\d+")


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "audio" if suffix in AUDIO else "image" if suffix in IMAGE else None


class MediaDirConnector:
    kind = "dir"
    text_values = False

    def __init__(self, root: Path, locator: str, roots: list[Path] | None = None) -> None:
        if not root.is_dir():
            raise IngestError(f"{root} is not a folder; dir: needs a folder of audio or images",
                              "ingest_validation_failed")
        self.root = root
        self.locator = locator
        self.base_dir: Path | None = root
        self.encoding: str | None = None
        self.roots = roots
        self.notes: list[str] = []
        self._resolved: dict[Path, Row] = {}

    # ---- files ------------------------------------------------------------------------
    def media_files(self) -> list[Path]:
        files = [
            p for p in self.root.rglob("*")
            if media_kind(p) and not any(part.startswith(".") for part in
                                         p.relative_to(self.root).parts)
        ]
        return sorted(files, key=lambda p: p.relative_to(self.root).as_posix())

    def _label_rule(self, files: list[Path]) -> str:
        parents = {p.relative_to(self.root).parent for p in files}
        if len([p for p in parents if p != Path(".")]) >= 2:
            return "folder"
        stems = [p.stem for p in files]
        if stems and all(_SPEAKER_PATTERN.fullmatch(s) for s in stems):
            return "speaker"
        if stems and all(_LABEL_PATTERN.fullmatch(s) for s in stems):
            return "pattern"
        return "none"

    def _file_row(self, path: Path, rule: str) -> dict[str, Any]:
        row: dict[str, Any] = {"path": str(path), "media": media_kind(path)}
        if rule == "folder":
            row["label"] = path.parent.name
        elif rule == "speaker":
            match = _SPEAKER_PATTERN.fullmatch(path.stem)
            assert match is not None
            row.update(label=match["label"], speaker=match["speaker"], take=match["take"])
        elif rule == "pattern":
            match = _LABEL_PATTERN.fullmatch(path.stem)
            assert match is not None
            row["label"] = match["label"]
        return row

    # ---- sidecar ----------------------------------------------------------------------
    def _keys(self, files: list[Path]) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for path in files:
            rel = path.relative_to(self.root)
            for key in (rel.as_posix(), str(rel.with_suffix("").as_posix()), path.name, path.stem,
                        str(path)):
                index.setdefault(key, path)
        return index

    def _find_sidecar(self, index: dict[str, Path]) -> tuple[Any, str] | None:
        best: tuple[float, Any, str] | None = None
        for candidate in sorted(self.root.iterdir()):
            if not candidate.is_file() or candidate.suffix.lower() not in SIDECAR_SUFFIXES:
                continue
            try:
                source = open_source(str(candidate), allowed_roots=self.roots)
                rows = []
                for row in source.load():
                    if isinstance(row, dict):
                        rows.append(row)
                    if len(rows) >= 200:
                        break
            except (IngestError, OSError, ValueError):
                continue
            if not rows:
                continue
            columns = {k for r in rows for k, v in r.items() if isinstance(v, (str, int))}
            for column in sorted(columns):
                hits = sum(_cell_key(r.get(column)) in index for r in rows)
                share = hits / len(rows)
                if share >= 0.5 and (best is None or share > best[0]):
                    best = (share, source, column)
        return (best[1], best[2]) if best else None

    # ---- rows -------------------------------------------------------------------------
    def load(self) -> Iterator[Row]:
        self.notes = []
        files = self.media_files()
        if not files:
            raise IngestError(
                f"{self.root} holds no audio ({', '.join(sorted(AUDIO))}) or image "
                f"({', '.join(sorted(IMAGE))}) files", "ingest_validation_failed")
        rule = self._label_rule(files)
        self.notes.append(f"{len(files)} media file(s); label from {rule}"
                          if rule != "none" else f"{len(files)} media file(s); no label rule")
        index = self._keys(files)
        self._resolved: dict[Path, Row] = {}
        sidecar = self._find_sidecar(index)
        if sidecar is None:
            for path in files:
                yield self._checked(path, rule, {})
            return
        source, column = sidecar
        self.notes.append(f"sidecar {Path(source.path).name} joined on column {column!r}")
        used: set[Path] = set()
        for number, row in enumerate(source.load(), start=1):
            if isinstance(row, SentinelRow):
                yield row
                continue
            path = index.get(_cell_key(row.get(column)))
            if path is None:
                yield SentinelRow(number, display_raw(json.dumps(row, ensure_ascii=False)),
                                  f"sidecar row names a missing file {row.get(column)!r}",
                                  self.locator)
                continue
            used.add(path)
            yield self._checked(path, rule, row)
        unnamed = [p for p in files if p not in used]
        if unnamed:
            self.notes.append(f"{len(unnamed)} media file(s) not named by the sidecar, "
                              "listed after its rows")
        for path in unnamed:
            yield self._checked(path, rule, {})

    def _checked(self, path: Path, rule: str, extra: dict[str, Any]) -> Row:
        base = self._resolved.get(path)
        if base is None:  # resolve each file once per pass, however many rows name it
            resolved = path.resolve()
            try:
                check_inside(resolved, self.roots)
                base = self._file_row(resolved, rule)
            except IngestError as exc:
                base = SentinelRow(0, str(path), str(exc), self.locator)
            self._resolved[path] = base
        if isinstance(base, SentinelRow):
            return base
        row = dict(base)
        for key, value in extra.items():
            row.setdefault(key, value)  # file facts win; sidecar columns fill the rest
            if key in ("path", "media") and value != row[key]:
                row[f"sidecar_{key}"] = value
        return row

    def describe(self, sample_size: int = 20) -> SourceDescription:
        size = sum(p.stat().st_size for p in self.media_files())
        return describe_source(self, sample_size, size=size)

    def __repr__(self) -> str:
        return f"MediaDirConnector({self.locator!r})"


def _cell_key(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip()
