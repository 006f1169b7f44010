"""The one list of stages, severities and reason codes (seed 004), plus row-level reject codes.

Everything that validates or emits a code imports it from here.
"""

from __future__ import annotations

KNOWN_STAGES: frozenset[str] = frozenset(
    {
        "ingestion",
        "cleaning",
        "adapter",
        "training",
        "eval",
        "export",
        "deployment",
        "autopilot",
        "system",
    }
)

SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")

# Reason codes grouped by the stage that owns them. Codes are never retired; add with one line.
REASON_CODES_BY_STAGE: dict[str, tuple[str, ...]] = {
    "ingestion": (
        "ingest_unsupported_format",
        "ingest_io_error",
        "ingest_validation_failed",
        "dataset_import_run",
        "dataset_import_failed",
        "annotation_job_created",
        "annotation_label_submitted",
        "annotation_rows_promoted",
        "distillation_teacher_capture",
    ),
    "cleaning": (
        "cleaning_outlier_threshold_exceeded",
        "cleaning_pii_block",
    ),
    "adapter": (
        "adapter_schema_mismatch",
        "adapter_field_resolution_failed",
    ),
    "training": (
        "training_dispatch_error",
        "training_runtime_error",
        "training_oom",
        "training_timeout",
        "training_cancelled",
    ),
    "eval": (
        "eval_runtime_error",
        "eval_dataset_missing",
        "eval_judge_unavailable",
    ),
    "export": (
        "export_run_failed",
        "export_artifact_missing",
        "export_quantization_failed",
    ),
    "deployment": (
        "deployment_smoke_failed",
        "deployment_promote_blocked",
        "deployment_rollback_no_predecessor",
        "deployment_drift_detected",
    ),
    "autopilot": (
        "autopilot_repair_blocked",
        "autopilot_strict_mode_refused",
        "autopilot_no_safe_plan",
    ),
    "system": (
        "system_db_error",
        "system_config_invalid",
        "extension_load_failed",
        "extension_contract_invalid",
    ),
}

KNOWN_REASON_CODES: frozenset[str] = frozenset(
    code for codes in REASON_CODES_BY_STAGE.values() for code in codes
)

# Row-level reject codes used by the map dry run (a RejectedRow carries exactly one).
# Stable: tests, CLIs and notebooks key on these strings.
ROW_REJECT_CODES: dict[str, str] = {
    "unparseable_row": "the source line could not be parsed or decoded (a sentinel row)",
    "missing_field": "a field the shape needs is absent from the row",
    "empty_text": "a required text field is empty or whitespace only",
    "type_mismatch": "a field has the wrong type (e.g. a list where text is expected)",
    "label_not_in_set": "the label is not in the declared label set",
    "span_out_of_bounds": "a character span or answer offset falls outside its text",
    "span_text_mismatch": "the answer text does not match the context at its offset",
    "length_mismatch": "parallel lists (tokens/tags) differ in length",
    "invalid_role_sequence": "chat turns have an unknown role or no assistant turn",
    "media_missing": "the image/audio file the row points to does not exist",
    "duplicate_row": "the same normalised row already appeared earlier in this import",
    "ragged_row": "a delimited row has more cells than the header, so its columns cannot be trusted",
    "dropped_by_user": "the user asked to drop rows with this reason",
}

# Task profiles: one per train handler (issue 5). Shapes map onto them in mapping/shapes.
TASK_PROFILES: tuple[str, ...] = (
    "classification",
    "qa",
    "structured_extraction",
    "rag",
    "alignment",
    "seq2seq",
    "vision_language",
    "audio_transcription",
    "safety",
)

SHAPES: tuple[str, ...] = (
    "alpaca",
    "sharegpt",
    "openai_messages",
    "prompt_completion",
    "text",
    "classification",
    "preference",
    "kto",
    "extractive_qa",
    "token_classification",
    "span_extraction",
    "seq2seq",
    "rag",
    "vision_language",
    "audio_transcript",
    "safety",
)

# Which task profile (handler) a committed shape feeds. Instruction/chat data is generative
# input -> output, served by the seq2seq handler on a decoder-only base model.
SHAPE_TASK_PROFILE: dict[str, str] = {
    "alpaca": "seq2seq",
    "sharegpt": "seq2seq",
    "openai_messages": "seq2seq",
    "prompt_completion": "seq2seq",
    "text": "seq2seq",
    "seq2seq": "seq2seq",
    "classification": "classification",
    "safety": "safety",
    "preference": "alignment",
    "kto": "alignment",
    "extractive_qa": "qa",
    "token_classification": "structured_extraction",
    "span_extraction": "structured_extraction",
    "rag": "rag",
    "vision_language": "vision_language",
    "audio_transcript": "audio_transcription",
}

FORCE_THRESHOLD = 0.80


def check_event_fields(stage: str, severity: str, reason_code: str | None) -> None:
    """Raise ValueError for anything the RunEvent boundary refuses."""
    if stage not in KNOWN_STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(KNOWN_STAGES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {list(SEVERITIES)}")
    if reason_code is not None and reason_code not in KNOWN_REASON_CODES:
        raise ValueError(f"invalid_reason_code:{reason_code}")
    if severity in ("error", "critical") and reason_code is None:
        raise ValueError(f"a {severity} event needs a reason_code from the taxonomy")
