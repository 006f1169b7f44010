"""Every lesson and the dashboard run top to bottom under nbmake, in smoke mode.

Each notebook runs in its own pytest subprocess (nbmake starts a real kernel) with
BREWSLM_SMOKE=1 (which turns on the lessons' autopilot: the clicks a learner makes), the
shared data folder, and a private lesson directory. Track 1 is one project carried through
its four lessons, so they run in order in one lesson directory. The learner's path (Run All,
then the clicks) is tested in real JupyterLab in tests/browser/test_lessons_browser.py.
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
    run_nbmake_all([notebook], tmp_path, shared_data, **env)


def run_nbmake_all(notebooks: list[Path], tmp_path: Path, shared_data: Path, **env: str) -> None:
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
    # One process, files in command-line order (Track 1 lessons continue one another).
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--nbmake", "--nbmake-timeout=900", *map(str, notebooks)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=1200,
    )
    names = ", ".join(n.name for n in notebooks)
    assert proc.returncode == 0, f"{names} failed:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}"


def test_every_track_has_lessons():
    tracks = {p.parent.name for p in LESSONS}
    assert tracks == {"track-1-first-model", "track-2-data-you-can-trust", "track-3-with-brewslm"}


TRACK_1 = [p for p in LESSONS if p.parent.name == "track-1-first-model"]
STANDALONE = [p for p in LESSONS if p not in TRACK_1]


def test_track_1_runs_in_order_in_one_project(tmp_path: Path, shared_data: Path):
    pytest.importorskip("torch")
    assert [p.stem[:9] for p in TRACK_1] == ["lesson-01", "lesson-02", "lesson-03", "lesson-04"]
    run_nbmake_all(TRACK_1, tmp_path, shared_data)
    from brewslm_core import Project
    from brewslm_core.mapping.store import read_imports

    project = Project.open(tmp_path / "lesson" / "track-1" / "project")
    assert [imp["locator"].rsplit("/", 1)[-1] for imp in read_imports(project)] == [
        "brew_intents.csv", "inbox_batch.csv"]  # lesson 02's commit, then lesson 03's batch
    assert len(list(project.runs_dir.iterdir())) == 1  # lesson 04's run


@pytest.mark.parametrize("notebook", STANDALONE, ids=[p.stem for p in STANDALONE])
def test_lesson_runs_in_smoke_mode(notebook: Path, tmp_path: Path, shared_data: Path):
    run_nbmake(notebook, tmp_path, shared_data)


def test_track_1_lesson_02_says_what_is_missing_without_lesson_01(tmp_path: Path, shared_data: Path):
    with pytest.raises(AssertionError, match="first lesson"):
        run_nbmake(TRACK_1[1], tmp_path, shared_data)


def test_dashboard_runs_over_a_project(tmp_path: Path, shared_data: Path):
    from importlib.resources import files

    from brewslm_core import Project
    from brewslm_core.mapping import commit

    project = Project.create(tmp_path / "proj")
    commit(project, str(files("brewslm_core") / "data" / "brew_intents.csv"), "classification")
    run_nbmake(REPO / "notebooks" / "dashboards" / "data.ipynb", tmp_path, shared_data,
               BREWSLM_PROJECT=str(project.root))


def test_dashboard_says_what_to_do_without_a_project(tmp_path: Path):
    """No BREWSLM_PROJECT: every cell runs without an error and the page says how to start it."""
    env = {k: v for k, v in os.environ.items() if k != "BREWSLM_PROJECT"}
    proc = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output-dir",
         str(tmp_path), str(REPO / "notebooks" / "dashboards" / "data.ipynb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import nbformat

    ran = nbformat.read(tmp_path / "data.ipynb", as_version=4)
    outputs = [o for c in ran.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    shown = " ".join(str(o.get("data", {}).get("text/markdown", "")) + o.get("text", "")
                     for o in outputs)
    assert "make dashboard PROJECT=path/to/project" in shown and "set BREWSLM_PROJECT" in shown
