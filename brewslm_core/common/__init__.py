"""Small utilities every layer above the contracts shares, each written once.

    atomic_write_text / atomic_write_bytes / atomic_write_json   temp file + fsync + rename
    atomic_file                                                  the same, for a streamed write
    file_lock                                                    one cross-process lock (filelock)
    parse_pairs                                                  ["k=v", ...] -> {"k": v}
"""

from .files import atomic_file, atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir
from .locks import file_lock
from .options import parse_pairs

__all__ = [
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_lock",
    "fsync_dir",
    "parse_pairs",
]
