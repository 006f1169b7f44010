"""What every connector shares: the protocol, the error, the registry, path safety, raw bytes."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..contracts import SentinelRow, SourceDescription
from ..registry import Registry

if TYPE_CHECKING:
    from ..project import Project

Row = dict[str, Any] | SentinelRow

GZIP_MAGIC = b"\x1f\x8b"
LFS_PREFIX = b"version https://git-lfs.github.com/spec/"


class IngestError(Exception):
    """A source cannot be read. ``reason_code`` is an ingestion code from contracts.reasons."""

    def __init__(self, message: str, reason_code: str = "ingest_io_error") -> None:
        super().__init__(message)
        self.reason_code = reason_code


@runtime_checkable
class Connector(Protocol):
    locator: str
    kind: str
    base_dir: Path | None  # folder that relative media paths in the rows are relative to

    def load(self) -> Iterator[Row]: ...

    def describe(self, sample_size: int = 20) -> SourceDescription: ...


class ConnectorFactory(Protocol):
    def __call__(self, target: str, *, locator: str, roots: list[Path] | None,
                 project: Project | None) -> Connector: ...


CONNECTORS: Registry[ConnectorFactory] = Registry("connector")


# ---- paths --------------------------------------------------------------------------------
def resolve_path(raw: str, *, roots: list[Path] | None, project: Project | None = None,
                 must_exist: bool = True) -> Path:
    """Absolute, symlink-free path; refused when it leaves the allowed roots."""
    given = Path(raw).expanduser()
    path = given if given.is_absolute() else Path.cwd() / given
    if not path.exists() and not given.is_absolute() and project is not None:
        path = project.root / given  # a path written relative to the project folder
    resolved = path.resolve()
    check_inside(resolved, roots, shown=raw)
    if must_exist and not resolved.exists():
        raise IngestError(
            f"{raw!r} does not exist (looked at {resolved}); check the path or download the data first",
            "ingest_io_error",
        )
    return resolved


def check_inside(resolved: Path, roots: list[Path] | None, shown: str | None = None) -> None:
    if not roots:
        return
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return
    allowed = ", ".join(str(r) for r in roots)
    raise IngestError(
        f"{shown or resolved!s} resolves to {resolved}, outside the project's allowed roots "
        f"({allowed}); copy the data under one of them or add its folder to "
        "[security] allowed_roots in brewslm.toml",
        "ingest_validation_failed",
    )


# ---- raw bytes ----------------------------------------------------------------------------
def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped transparently when it starts with the gzip magic."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_head(path: Path, size: int = 65536) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(size)
    except (OSError, EOFError) as exc:
        raise IngestError(f"cannot read {path}: {exc}", "ingest_io_error") from exc


def placeholder_problem(head: bytes) -> str | None:
    """A note when the bytes are not data at all: a Git LFS pointer or a saved HTML page."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(LFS_PREFIX):
        size = ""
        for line in text.splitlines():
            if line.startswith(b"size "):
                size = f" of {line[5:].decode('ascii', 'replace').strip()} bytes"
        return (
            f"git-lfs pointer: this file only points at the real data{size}, which was never "
            "downloaded; run `git lfs pull` in the repository it came from (or download the "
            "file again) and point at the real file"
        )
    lowered = text[:512].lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or (
        lowered.startswith(b"<") and b"<html" in lowered
    ):
        return (
            "html page: this file is a web page saved under a data name (often a login, "
            "error or 'virus scan' interstitial), not the data; download the file again "
            "from its direct link"
        )
    return None


# Formats people point a text locator at by mistake: magic bytes -> what it is, what to do.
BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable (a compiled program), not data: check that this is the file "
                  "you meant"),
    (b"MZ\x90\x00", "a Windows executable (PE), not data: check that this is the file you meant"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable, not data: check that this is the file you meant"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable, not data: check that this is the file you meant"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or Java class file, not data"),
    (b"\x00asm", "a WebAssembly module, not data: check that this is the file you meant"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file: decompress it first (zstd -d FILE) and point "
                         "at the result"),
    (b"\xfd7zXZ\x00", "an xz-compressed file: decompress it first (xz -d FILE)"),
    (b"BZh", "a bzip2-compressed file: decompress it first (bunzip2 FILE)"),
    (b"\x93NUMPY", "a NumPy .npy array: export it to CSV, JSON Lines or Parquet"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file: export the table to CSV or Parquet"),
    (b"ARROW1", "an Arrow IPC file: convert it to Parquet and use parquet:PATH"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx is one too): unzip it, or save the sheet "
                     "as CSV, and point at the file inside"),
    (b"\x89PNG", "a PNG image: put images in a folder and use dir:FOLDER"),
    (b"\xff\xd8\xff", "a JPEG image: put images in a folder and use dir:FOLDER"),
    (b"GIF8", "a GIF image: convert it to PNG and use dir:FOLDER"),
    (b"RIFF", "a RIFF (WAV/WebP) media file: put media in a folder and use dir:FOLDER"),
    (b"OggS", "an Ogg audio file: put audio in a folder and use dir:FOLDER"),
    (b"fLaC", "a FLAC audio file: put audio in a folder and use dir:FOLDER"),
    (b"ID3", "an MP3 audio file: put audio in a folder and use dir:FOLDER"),
    (b"%PDF", "a PDF document: extract its text first"),
    (b"SQLite format 3\x00", "an SQLite database: export the table to CSV or Parquet"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls/.doc): save it as CSV"),
    (b"7z\xbc\xaf", "a 7z archive: extract it and point at the file inside"),
    (b"Rar!", "a RAR archive: extract it and point at the file inside"),
    (b"PAR1", "a Parquet file: use parquet:PATH"),
)


def binary_problem(head: bytes) -> str | None:
    """A note when bytes meant as text are a known binary format or plainly not text."""
    for magic, what in BINARY_MAGIC:
        if head.startswith(magic):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive: extract it (tar -xf FILE) and point at the file inside"
    sample = head[:8192]
    if not sample or sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # empty, or UTF-16/32 text with a byte order mark
    if max(sample[0::2].count(0), sample[1::2].count(0)) > 0.4 * len(sample) / 2:
        return None  # UTF-16 text without a byte order mark: NUL in every other byte
    try:
        sample.decode("utf-8")
        return None  # valid UTF-8 is text, NUL bytes and all
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4:
            return None  # a character cut at the sample's end
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 11) or b == 127)
    if controls / len(sample) > 0.05:
        return "binary data, not text: check that this is the file you meant"
    return None


def raise_if_placeholder(path: Path, text: bool = True) -> None:
    head = read_head(path, 8192)
    problem = placeholder_problem(head) or (binary_problem(head) if text else None)
    if problem:
        raise IngestError(f"{path.name}: {problem}", "ingest_unsupported_format")


def display_raw(data: bytes | str, limit: int = 2000) -> str:
    """Raw text for a sentinel row: undecodable bytes become visible escapes, never lost."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="backslashreplace")
    else:
        data = data.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace"
        )
    return data if len(data) <= limit else data[:limit] + f"… [{len(data) - limit} more chars]"


def file_size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def text_stream(binary: IO[bytes], encoding: str) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes so the row can become a sentinel, not a crash.
    return io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape", newline="")


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
