"""Autopilot contracts: what each step did, the repairs it applied, and how the flight ended."""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

AUTOPILOT_STATUSES: tuple[str, ...] = ("completed", "refused")


@contract
class AutopilotStep(Contract):
    name: str  # introspect | map | clean | prepare | preflight | train | eval | export
    status: str  # done | skipped
    detail: str
    data: dict[str, Any]


@contract
class Repair(Contract):
    step: str
    what: str
    change: dict[str, Any]


@contract
class AutopilotResult(Contract):
    run_id: str  # autopilot-<hex>: every child event carries it as parent_run_id
    status: str  # completed | refused
    locator: str
    task: str
    strict: bool
    steps: tuple[AutopilotStep, ...]
    repairs: tuple[Repair, ...]
    refusal: dict[str, str] | None  # {code, message}: what the person must decide
    outputs: dict[str, Any]  # import_id, train_run_id, eval_id, export_id …
