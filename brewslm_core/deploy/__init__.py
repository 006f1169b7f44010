"""Deploy stage: serve an export (vLLM, local, SkyPilot YAML) as a versioned DeploymentVersion
with promote / reject / rollback / drift actions.

    from brewslm_core.deploy import deploy, promote, drift
    dep = deploy(project, "export-…", "vllm")      # a candidate, its server a background task
    promote(project, dep.deploy_id)                # eval gates + a live smoke check

Serving runtimes with their own torch (vLLM) live in venvs under the user cache dir
(``install_runtime("vllm")``). torch/transformers are never imported here.
"""

from ..contracts.deploy import DeploymentVersion, GoldCheck, SmokeResult
from .actions import (
    DRIFT_TOLERANCE,
    deploy,
    drift,
    promote,
    reject,
    restart,
    rollback,
    schedule_drift,
    stop,
)
from .runtime import RuntimeMissingError, install_runtime, is_installed, runtime_python
from .store import DeploymentError, get, history, list_deployments
from .targets import TARGETS

__all__ = [
    "DRIFT_TOLERANCE",
    "TARGETS",
    "DeploymentError",
    "DeploymentVersion",
    "GoldCheck",
    "RuntimeMissingError",
    "SmokeResult",
    "deploy",
    "drift",
    "get",
    "history",
    "install_runtime",
    "is_installed",
    "list_deployments",
    "promote",
    "reject",
    "restart",
    "rollback",
    "runtime_python",
    "schedule_drift",
    "stop",
]
