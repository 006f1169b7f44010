"""Ingest: connectors that stream rows (and sentinel rows) out of any locator.

    from brewslm_core.ingest import open_source, sample_rows
    src = open_source("csv:data/train.csv")
    src.describe().rows, sample_rows(src, 20)
"""

from ..contracts import SentinelRow, SourceDescription
from .base import CONNECTORS, Connector, IngestError, Row
from .describe import sample_rows
from .sources import open_source

__all__ = [
    "CONNECTORS",
    "Connector",
    "IngestError",
    "Row",
    "SentinelRow",
    "SourceDescription",
    "open_source",
    "sample_rows",
]
