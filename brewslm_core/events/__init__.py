"""The RunEvent store: an append-only JSONL log queried through DuckDB."""

from .db import COLUMNS, EventQueryError
from .log import EventStoreError
from .store import EventStore, parent_run

__all__ = ["COLUMNS", "EventQueryError", "EventStore", "EventStoreError", "parent_run"]
