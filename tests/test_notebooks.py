"""Every lesson and the dashboard run top to bottom under nbmake, in smoke mode.

Each notebook runs in its own pytest subprocess (nbmake starts a real kernel) with
BREWSLM_SMOKE=1, the shared data folder, and a private lesson directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "notebooks").glob("track-*/lesson-*.ipynb"))


def run_nbmake(notebook: Path, tmp_path: Path, shared_data: Path, **env: str) -> None:
    environ = {
        **os.environ,
        "BREWSLM_SMOKE": "1",
        "BREWSLM_SHARED_DATA": str(shared_data),
        "BREWSLM_LESSON_DIR": str(tmp_path / "lesson"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
         "--nbmake-timeout=900", str(notebook)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, f"{notebook.name} failed:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"


def test_every_track_has_lessons():
    tracks = {p.parent.name for p in LESSONS}
    assert tracks == {"track-1-first-model", "track-2-data-you-can-trust", "track-3-with-brewslm"}


@pytest.mark.parametrize("notebook", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_smoke_mode(notebook: Path, tmp_path: Path, shared_data: Path):
    if "train" in notebook.stem:
        pytest.importorskip("torch")
    run_nbmake(notebook, tmp_path, shared_data)


def test_dashboard_runs_over_a_project(tmp_path: Path, shared_data: Path):
    from importlib.resources import files

    from brewslm_core import Project
    from brewslm_core.mapping import commit

    project = Project.create(tmp_path / "proj")
    commit(project, str(files("brewslm_core") / "data" / "brew_intents.csv"), "classification")
    run_nbmake(REPO / "notebooks" / "dashboards" / "data.ipynb", tmp_path, shared_data,
               BREWSLM_PROJECT=str(project.root))


def test_dashboard_says_what_to_do_without_a_project(tmp_path: Path, shared_data: Path):
    env = {k: v for k, v in os.environ.items() if k != "BREWSLM_PROJECT"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
         str(REPO / "notebooks" / "dashboards" / "data.ipynb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0
    assert "set BREWSLM_PROJECT" in proc.stdout
