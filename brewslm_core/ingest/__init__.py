"""Ingest: connectors that stream rows (and sentinel rows) out of any locator.

    from brewslm_core.ingest import open_source, sample_rows
    src = open_source("csv:data/train.csv")
    src.describe().rows, sample_rows(src, 20)
"""

from ..contracts import SentinelRow, SourceDescription
from . import sources as _sources  # noqa: F401  (registers the built-in connectors)
from .base import CONNECTORS, Connector, IngestError, Row
from .describe import sample_rows
from .open import open_connector, open_source

__all__ = [
    "CONNECTORS",
    "Connector",
    "IngestError",
    "Row",
    "SentinelRow",
    "SourceDescription",
    "open_connector",
    "open_source",
    "sample_rows",
]
