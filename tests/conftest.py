"""Shared fixtures. Real third-party data lives in ../shared/data beside the clone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BREWSLM_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Project.create/open register projects in the user's registry: keep the suite's own apart.
os.environ.setdefault("BREWSLM_CONFIG_DIR", tempfile.mkdtemp(prefix="brewslm-test-config-"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"test data folder {SHARED_DATA} is missing: clone the repo next to shared/ "
            "or set BREWSLM_SHARED_DATA"
        )
    return SHARED_DATA


@pytest.fixture()
def project(tmp_path: Path):
    from brewslm_core import Project

    return Project.create(tmp_path / "proj")
