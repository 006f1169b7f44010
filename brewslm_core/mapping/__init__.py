"""Map stage: dry run and commit of source rows into canonical shape records (see shapes.py)."""

from ..contracts.shapes import record_text, text_hash
from .engine import (
    LowConfidenceError,
    MappingError,
    commit,
    config_id,
    dry_run,
    map_rows,
    resolve,
)
from .fields import RowReject
from .mappers import MAPPERS
from .store import read_committed, read_imports

__all__ = [
    "LowConfidenceError",
    "MappingError",
    "MAPPERS",
    "RowReject",
    "commit",
    "config_id",
    "dry_run",
    "map_rows",
    "read_committed",
    "read_imports",
    "record_text",
    "resolve",
    "text_hash",
]
