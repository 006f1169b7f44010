from __future__ import annotations

from datetime import datetime
from typing import Any

from .base import Contract, contract


@contract
class RunEvent(Contract):
    """One row of the audit spine, exactly the seed-004 columns."""

    id: int
    project_id: int
    run_id: str | None
    parent_run_id: str | None
    stage: str
    severity: str
    reason_code: str | None
    actor: str
    summary: str | None
    payload: dict[str, Any]
    ts: datetime
    created_at: datetime
