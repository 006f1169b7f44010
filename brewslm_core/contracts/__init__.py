"""Frozen contract objects from the seeds. Import from here, not from the submodules."""

from .base import Contract, contract
from .evaluate import EvalReport, FailureCluster, Gate, GateResult
from .events import RunEvent
from .export import EXPORT_FORMATS, ExportBundle, ExportFile, QuantVariant, ServeSpec
from .ingest import FieldInfo, SentinelRow, SourceDescription
from .introspect import ProposedMapping, ShapeHypothesis
from .mapping import CommitResult, DryRunReport, ReasonGroup, RejectedRow, TransformedRow
from .preflight import (
    CHECK_STATUSES,
    PREFLIGHT_MODES,
    CheckResult,
    HardwareInfo,
    MemoryEstimate,
    PreflightItem,
    PreflightReport,
    TrainPlan,
)
from .prepare import (
    MANIFEST_SCHEMA_VERSION,
    SCORING_MODES,
    SPLITS,
    Manifest,
    ManifestError,
    OutputSchema,
    SplitFile,
    SupervisionAudit,
    TokenStats,
)
from .reasons import (
    FORCE_THRESHOLD,
    KNOWN_REASON_CODES,
    KNOWN_STAGES,
    REASON_CODES_BY_STAGE,
    ROW_REJECT_CODES,
    SEVERITIES,
    SHAPE_TASK_PROFILE,
    SHAPES,
    TASK_PROFILES,
    check_event_fields,
)

__all__ = [
    "Contract",
    "contract",
    "RunEvent",
    "EvalReport",
    "FailureCluster",
    "Gate",
    "GateResult",
    "EXPORT_FORMATS",
    "ExportBundle",
    "ExportFile",
    "QuantVariant",
    "ServeSpec",
    "FieldInfo",
    "SentinelRow",
    "SourceDescription",
    "ProposedMapping",
    "ShapeHypothesis",
    "CommitResult",
    "DryRunReport",
    "ReasonGroup",
    "RejectedRow",
    "TransformedRow",
    "CHECK_STATUSES",
    "PREFLIGHT_MODES",
    "CheckResult",
    "HardwareInfo",
    "MemoryEstimate",
    "PreflightItem",
    "PreflightReport",
    "TrainPlan",
    "MANIFEST_SCHEMA_VERSION",
    "SCORING_MODES",
    "SPLITS",
    "Manifest",
    "ManifestError",
    "OutputSchema",
    "SplitFile",
    "SupervisionAudit",
    "TokenStats",
    "FORCE_THRESHOLD",
    "KNOWN_REASON_CODES",
    "KNOWN_STAGES",
    "REASON_CODES_BY_STAGE",
    "ROW_REJECT_CODES",
    "SEVERITIES",
    "SHAPE_TASK_PROFILE",
    "SHAPES",
    "TASK_PROFILES",
    "check_event_fields",
]
