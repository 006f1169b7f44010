"""Bundle folders: staged in a hidden temp folder, renamed into ``exports/<export_id>/`` only
once weights, smoke.json and manifest.json (written last) are all there."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.export import ExportBundle, ExportFile

if TYPE_CHECKING:
    from ..project import Project

MANIFEST = "manifest.json"
SMOKE = "smoke.json"
STAGING_PREFIX = ".staging-"


class ExportNotFoundError(FileNotFoundError):
    """No finished bundle with that id; the message lists the ones there are."""


def new_export_id() -> str:
    return f"export-{uuid.uuid4().hex[:8]}"


@contextmanager
def staging(project: Project, export_id: str) -> Iterator[Path]:
    """A temp folder beside the bundles; removed on any error, so no half bundle remains."""
    project.exports_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{export_id}-", dir=project.exports_dir))
    try:
        tmp.chmod(0o755)
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_list(folder: Path) -> tuple[ExportFile, ...]:
    """Every file under ``folder`` except the manifest itself, with size and sha256."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST:
            continue
        files.append(ExportFile(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
    return tuple(files)


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link when src and dst share a file system (weights are hundreds of MB), else a copy.

    Safe because neither the run folder nor the model cache rewrites files in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_folder(src: Path, dst: Path, skip: tuple[str, ...] = ("README.md",)) -> None:
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        if path.name in skip or path.name.endswith(".lock"):
            continue
        link_or_copy(path, dst / path.relative_to(src))


def finish(project: Project, tmp: Path, bundle: ExportBundle, smoke: dict[str, Any]) -> ExportBundle:
    """Write smoke.json, list the files, write manifest.json last, rename into place."""
    (tmp / SMOKE).write_text(json.dumps(smoke, indent=2, default=str), encoding="utf-8")
    final = project.exports_dir / bundle.export_id
    done = dataclasses.replace(bundle, files=file_list(tmp), path=str(final))
    text = json.dumps(done.manifest_dict(), indent=2, ensure_ascii=False)
    (tmp / MANIFEST).write_text(text + "\n", encoding="utf-8")
    if final.exists():
        raise FileExistsError(f"export {bundle.export_id} already exists at {final}")
    os.replace(tmp, final)
    return done


def load_bundle(project: Project, export_id: str) -> ExportBundle:
    """A finished bundle by id (``exports/<export_id>/manifest.json``)."""
    folder = project.exports_dir / export_id
    path = folder / MANIFEST
    if export_id.startswith(".") or not path.is_file():
        known = ", ".join(b.export_id for b in list_exports(project)) or "none"
        raise ExportNotFoundError(
            f"no export {export_id!r} in {project.exports_dir} (finished exports: {known}); "
            "make one with `brewslm export PROJECT RUN --format hf`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ExportBundle.from_dict(data, str(folder))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a valid export manifest ({type(exc).__name__}: {exc})") from exc


def list_exports(project: Project) -> list[ExportBundle]:
    """Finished bundles, oldest first (staging folders and unreadable manifests are skipped)."""
    out = []
    if not project.exports_dir.is_dir():
        return out
    for folder in project.exports_dir.iterdir():
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            out.append(ExportBundle.from_dict(data, str(folder)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out, key=lambda b: (b.created_at, b.export_id))


def verify_files(bundle: ExportBundle) -> list[str]:
    """Problems with a bundle's files against its manifest (empty when every byte matches)."""
    problems = []
    root = Path(bundle.path)
    for f in bundle.files:
        path = root / f.path
        if not path.is_file():
            problems.append(f"{f.path} is missing")
        elif path.stat().st_size != f.size or sha256_file(path) != f.sha256:
            problems.append(f"{f.path} changed (size or sha256 differs)")
    return problems
