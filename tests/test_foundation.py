"""Contracts, the reason taxonomy, the registry and the project directory."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from brewslm_core import Project, ProjectError, Registry, UnknownNameError
from brewslm_core.contracts import (
    KNOWN_REASON_CODES,
    KNOWN_STAGES,
    REASON_CODES_BY_STAGE,
    ROW_REJECT_CODES,
    SEVERITIES,
    SHAPE_TASK_PROFILE,
    SHAPES,
    TASK_PROFILES,
    ProposedMapping,
    ShapeHypothesis,
    check_event_fields,
)

SEED_004 = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "004_3997f8a3b2c07c73.txt"


def test_taxonomy_matches_seed_004() -> None:
    if not SEED_004.exists():
        pytest.fail(f"seed document missing at {SEED_004}")
    text = SEED_004.read_text(encoding="utf-8")
    # Every snake_case code listed at the start of a line in the taxonomy section.
    section = text.split("The reason-code taxonomy, by stage", 1)[1].split("Stable vs evolving", 1)[0]
    listed = set(re.findall(r"^([a-z]+(?:_[a-z]+)+)\s", section, flags=re.M))
    assert listed == set(KNOWN_REASON_CODES)
    assert set(REASON_CODES_BY_STAGE) == set(KNOWN_STAGES)
    assert len(KNOWN_STAGES) == 9 and SEVERITIES == ("info", "warning", "error", "critical")


def test_codes_are_unique_across_stages() -> None:
    flat = [c for codes in REASON_CODES_BY_STAGE.values() for c in codes]
    assert len(flat) == len(set(flat))
    assert not set(ROW_REJECT_CODES) & KNOWN_REASON_CODES


def test_every_shape_feeds_a_handler() -> None:
    assert set(SHAPE_TASK_PROFILE) == set(SHAPES)
    assert set(SHAPE_TASK_PROFILE.values()) <= set(TASK_PROFILES)
    assert len(TASK_PROFILES) == 9


@pytest.mark.parametrize(
    ("stage", "severity", "code", "message"),
    [
        ("nope", "info", None, "unknown stage"),
        ("training", "fatal", None, "unknown severity"),
        ("training", "error", None, "needs a reason_code"),
        ("training", "critical", None, "needs a reason_code"),
        ("training", "error", "made_up", "invalid_reason_code:made_up"),
    ],
)
def test_event_boundary_refuses(stage: str, severity: str, code: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_event_fields(stage, severity, code)


def test_event_boundary_accepts() -> None:
    check_event_fields("training", "error", "training_oom")
    check_event_fields("ingestion", "info", "dataset_import_run")
    check_event_fields("system", "warning", None)


def test_contracts_are_frozen_and_plain() -> None:
    mapping = ProposedMapping(shape="alpaca", field_map={"instruction": "q"}, confidence=0.9)
    hyp = ShapeHypothesis(shape="alpaca", confidence=0.9, rationale="keys", mapping=mapping)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyp.confidence = 0.1  # type: ignore[misc]
    assert hyp.to_dict() == {
        "shape": "alpaca",
        "confidence": 0.9,
        "rationale": "keys",
        "mapping": {
            "shape": "alpaca",
            "field_map": {"instruction": "q"},
            "confidence": 0.9,
            "options": None,
        },
    }


def test_registry_suggests_close_names() -> None:
    reg: Registry[int] = Registry("connector")
    reg.register("jsonl")(1)
    reg.register("json")(2)
    assert reg.get("jsonl") == 1 and "json" in reg and reg.names() == ["json", "jsonl"]
    with pytest.raises(UnknownNameError, match=r"did you mean 'jsonl'"):
        reg.get("jsnol")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("json")(3)


def test_project_create_open_and_layout(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p", project={"name": "demo"})
    assert project.name == "demo" and project.id > 0
    for sub in ("data/raw", "data/cleaned", "prepared", "runs", "exports", "events"):
        assert (project.root / sub).is_dir()
    again = Project.open(tmp_path / "p")
    assert again.id == project.id and again.config["gates"]["policy"] == "strict"
    with pytest.raises(ProjectError, match="already a BrewSLM project"):
        Project.create(tmp_path / "p")
    with pytest.raises(ProjectError, match="not a BrewSLM project"):
        Project.open(tmp_path / "missing")
    (tmp_path / "p" / "brewslm.toml").write_text("not = [valid", encoding="utf-8")
    with pytest.raises(ProjectError, match="not valid TOML"):
        Project.open(tmp_path / "p")


def test_import_is_light() -> None:
    """`import brewslm_core` must not pull torch/transformers (that is what keeps it under 1 s)."""
    code = (
        "import sys, brewslm_core, brewslm_core.contracts, brewslm_core.cli;"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'peft') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_projects_never_share_config_tables(tmp_path: Path) -> None:
    first = Project.create(tmp_path / "a")
    first.config["gates"]["policy"] = "fail-open"
    second = Project.create(tmp_path / "b")
    assert second.config["gates"]["policy"] == "strict"
