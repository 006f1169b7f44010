"""Deploy contracts: a DeploymentVersion and the gold checks run against its endpoint."""

from __future__ import annotations

from typing import Any

from .base import Contract, contract

TARGETS: tuple[str, ...] = ("vllm", "local", "skypilot")
STATUSES: tuple[str, ...] = ("candidate", "promoted", "rejected", "superseded", "rolled_back")
# status -> the statuses an action may move it to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("promoted", "rejected"),
    "promoted": ("superseded", "rolled_back"),
    "superseded": ("promoted",),  # a rollback brings the predecessor back
    "rejected": (),
    "rolled_back": (),
}


@contract
class GoldCheck(Contract):
    """Gold prompts sent to a live endpoint and judged against their expected outputs."""

    source: str  # "prepared/gold.jsonl", "prepared/eval.jsonl" or "none"
    judge: str  # how one example passes, in words
    n: int
    passed: int
    pass_rate: float | None  # None when there were no gold examples
    examples: tuple[dict[str, Any], ...]  # {id, expected, output, passed}
    checked_at: str


@contract
class SmokeResult(Contract):
    """One real 1-token generation (or classification) plus the gold prompts."""

    ok: bool
    model: str
    one_token: str | None
    error: str | None
    gold: GoldCheck | None
    checked_at: str


@contract
class DeploymentVersion(Contract):
    """One deployment of one export to one target; every change is a new appended revision."""

    deploy_id: str
    revision: int
    export_id: str
    source_run: str
    task_kind: str  # causal_lm | encoder
    target: str  # vllm | local | skypilot
    server: str  # vllm | transformers-serve | llama-cpp | classify | external | skypilot-yaml
    endpoint: str | None  # base URL of the OpenAI-compatible API (…/v1), None for skypilot
    served_model_name: str
    adapter_name: str | None  # LoRA module name served beside the base, if any
    task_id: str | None  # the background task running a managed server
    artifact: str | None  # e.g. the SkyPilot task YAML (relative to the project)
    status: str
    predecessor: str | None  # the deployment this one superseded when promoted
    superseded_by: str | None
    baseline_pass_rate: float | None  # gold pass rate measured at promotion
    smoke: SmokeResult | None
    drift: tuple[dict[str, Any], ...]  # each drift check: pass_rate, baseline, delta, drifted, at
    created_at: str
    updated_at: str
    promoted_at: str | None
    note: str | None
