"""``hf:ID:SPLIT`` through the ``datasets`` library and ``kaggle:COMP:FILE`` download folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts import SourceDescription
from .base import Connector, IngestError, Row, check_inside, resolve_path
from .describe import describe_source
from .open import open_source

if TYPE_CHECKING:
    from ..project import Project

HF_BATCH = 1000


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


def split_hf_target(target: str) -> tuple[str, str | None]:
    """``ID:SPLIT`` -> (ID, SPLIT); a target that is an existing path keeps its colons."""
    if Path(target).expanduser().exists() or ":" not in target:
        return target, None
    ident, _, split = target.rpartition(":")
    return ident, split or None


class HfConnector:
    """Rows of one split of a datasets Dataset: a save_to_disk folder or the hub (cache)."""

    kind = "hf"
    text_values = False

    def __init__(self, ident: str, split: str | None, locator: str, *,
                 roots: list[Path] | None, project: Project | None) -> None:
        self.ident = ident
        self.split = split
        self.locator = locator
        self.encoding: str | None = None
        self.notes: list[str] = []
        self.local: Path | None = None
        if Path(ident).expanduser().exists() or ident.startswith((".", "/", "~")):
            self.local = resolve_path(ident, roots=roots, project=project)
        self.base_dir: Path | None = self.local
        self._dataset: Any = None

    def dataset(self) -> Any:
        if self._dataset is None:
            self._dataset = self._open()
        return self._dataset

    def _open(self) -> Any:
        import datasets

        if self.local is not None:
            try:
                data = datasets.load_from_disk(str(self.local))
            except (FileNotFoundError, ValueError) as exc:
                raise IngestError(
                    f"{self.local} is not a datasets save_to_disk folder ({exc}); save one with "
                    "`dataset.save_to_disk(path)`", "ingest_unsupported_format") from exc
            if isinstance(data, datasets.DatasetDict):
                split = self.split or ("train" if "train" in data else next(iter(data), None))
                if split not in data:
                    raise IngestError(
                        f"{self.local} has no split {self.split!r}; it has "
                        f"{', '.join(data)}: use hf:{self.ident}:<split>",
                        "ingest_validation_failed")
                self.split = split
                self.notes.append(f"save_to_disk DatasetDict, split {split!r}")
                return self._plain(data[split])
            self.notes.append("save_to_disk Dataset")
            return self._plain(data)
        split = self.split or "train"
        try:
            data = datasets.load_dataset(self.ident, split=split)
        except Exception as exc:  # datasets raises many types for "not found / no network"
            if _offline():
                raise IngestError(
                    f"hf:{self.ident}:{split} is not in the local datasets cache and the hub is "
                    f"offline (HF_HUB_OFFLINE=1). Either run with network and HF_HUB_OFFLINE=0 "
                    f"once so it is cached, or on a machine with network run "
                    f"`datasets.load_dataset({self.ident!r}, split={split!r})"
                    f".save_to_disk('<folder>')`, copy the folder here and use "
                    f"hf:<folder>:{split}. ({type(exc).__name__}: {exc})",
                    "ingest_io_error") from exc
            raise IngestError(f"cannot load hf:{self.ident}:{split}: {exc}",
                              "ingest_io_error") from exc
        self.notes.append(f"hub dataset {self.ident!r}, split {split!r}")
        return self._plain(data)

    @staticmethod
    def _plain(data: Any) -> Any:
        """Media columns as stored bytes/paths, not decoded PIL images or arrays."""
        import datasets

        for name, feature in data.features.items():
            if isinstance(feature, (datasets.Image, datasets.Audio)):
                try:
                    data = data.cast_column(name, type(feature)(decode=False))
                except (TypeError, ValueError):
                    pass
        return data

    def load(self) -> Iterator[Row]:
        data = self.dataset()
        for batch in data.iter(batch_size=HF_BATCH):
            keys = list(batch)
            if not keys:
                continue
            for values in zip(*(batch[k] for k in keys), strict=True):
                yield dict(zip(keys, values, strict=True))

    def describe(self, sample_size: int = 20) -> SourceDescription:
        data = self.dataset()
        size = None
        if self.local is not None:
            size = sum(p.stat().st_size for p in self.local.rglob("*") if p.is_file())
        shape_note = f"{len(data)} rows, columns {', '.join(data.column_names)}"
        if shape_note not in self.notes:
            self.notes.append(shape_note)
        return describe_source(self, sample_size, size=size)

    def __repr__(self) -> str:
        return f"HfConnector({self.locator!r})"


# ---- kaggle -----------------------------------------------------------------------------
def kaggle_dirs(comp: str, project: Project | None) -> list[Path]:
    dirs = []
    env = os.environ.get("BREWSLM_KAGGLE_DIR")
    if env:
        dirs.append(Path(env).expanduser() / comp)
    if project is not None:
        dirs.append(project.raw_dir / "kaggle" / comp)
    return dirs


def _find_file(folder: Path, slug: str) -> Path | None:
    if not folder.is_dir():
        return None
    exact = folder / slug
    if exact.is_file():
        return exact
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() != ".zip")
    for match in (lambda p: p.name == slug, lambda p: p.name.split(".")[0] == slug):
        found = [p for p in files if match(p)]
        if found:
            return found[0]
    return None


def _safe_unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise IngestError(f"{archive.name} holds a path leaving its folder: {member}",
                                  "ingest_validation_failed")
        zf.extractall(dest)


def _unzip_all(folder: Path) -> None:
    for archive in sorted(folder.glob("*.zip")):
        marker = folder / f".{archive.name}.extracted"
        if not marker.exists():
            _safe_unzip(archive, folder)
            marker.touch()


class KaggleConnector:
    """One file of a Kaggle competition download, read by the connector its content needs."""

    kind = "kaggle"

    def __init__(self, inner: Connector, locator: str, path: Path) -> None:
        self.inner = inner
        self.locator = locator
        self.path = path
        self.base_dir = inner.base_dir
        self.encoding = getattr(inner, "encoding", None)
        self.text_values = getattr(inner, "text_values", False)

    @property
    def notes(self) -> list[str]:
        return [f"kaggle file {self.path}", f"read as {self.inner.kind}",
                *getattr(self.inner, "notes", [])]

    def load(self) -> Iterator[Row]:
        yield from self.inner.load()

    def describe(self, sample_size: int = 20) -> SourceDescription:
        return describe_source(self, sample_size, size=self.path.stat().st_size,
                               encoding=getattr(self.inner, "encoding", None),
                               text_values=self.text_values)


def open_kaggle(target: str, *, locator: str, roots: list[Path] | None,
                project: Project | None) -> Connector:
    comp, _, slug = target.partition(":")
    if not comp or not slug:
        raise IngestError(f"kaggle locator {locator!r} needs kaggle:COMPETITION:FILE "
                          "(e.g. kaggle:titanic:train.csv)", "ingest_validation_failed")
    folders = kaggle_dirs(comp, project)
    for folder in folders:
        if folder.is_dir():
            check_inside(folder.resolve(), roots)
            _unzip_all(folder)
            found = _find_file(folder, slug)
            if found:
                inner = open_source(str(found), project=project, allowed_roots=roots)
                return KaggleConnector(inner, locator, found.resolve())
    cli = shutil.which("kaggle")
    dest = folders[0] if folders else Path.home() / ".cache" / "brewslm" / "kaggle" / comp
    if cli:
        dest.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [cli, "competitions", "download", "-c", comp, "-f", slug, "-p", str(dest)],
            capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0:
            raise IngestError(
                f"`kaggle competitions download -c {comp} -f {slug}` failed: "
                f"{(done.stderr or done.stdout).strip()[:500]}; check ~/.kaggle/kaggle.json and "
                "that you accepted the competition's rules on kaggle.com", "ingest_io_error")
        _unzip_all(dest)
        found = _find_file(dest, slug)
        if found:
            inner = open_source(str(found), project=project, allowed_roots=roots)
            return KaggleConnector(inner, locator, found.resolve())
    looked = ", ".join(str(f) for f in folders) or "(no folder configured)"
    raise IngestError(
        f"kaggle:{comp}:{slug} is not downloaded (looked in {looked}) and the kaggle CLI is "
        f"{'installed but did not fetch it' if cli else 'not installed'}. Steps: "
        "1) pip install kaggle and put your API token in ~/.kaggle/kaggle.json; "
        f"2) accept the rules of '{comp}' on kaggle.com; "
        f"3) kaggle competitions download -c {comp} -p <folder>/{comp} and unzip it; "
        "4) set BREWSLM_KAGGLE_DIR=<folder> (or put it under the project's data/raw/kaggle/).",
        "ingest_io_error")
