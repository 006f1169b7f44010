"""`make demo` runs the whole pipeline on the bundled data (here in smoke mode: few steps)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from brewslm_core import Project


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    env = {**os.environ, "BREWSLM_SMOKE": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "brewslm_core.demo", str(target)], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "done" in out.stdout
    project = Project.open(target)
    stages = project.events.query(
        "SELECT stage, severity, reason_code FROM run_events ORDER BY id"
    ).itertuples(index=False)
    seen = [(s, v, r if isinstance(r, str) else None) for s, v, r in stages]
    assert ("ingestion", "info", "dataset_import_run") in seen
    assert {"cleaning", "adapter", "training", "eval", "export"} <= {s for s, _, _ in seen}
    assert not [row for row in seen if row[1] in ("error", "critical")]
    assert (target / "prepared" / "manifest.json").is_file()
    assert list((target / "runs").glob("exp-*/adapter"))
    assert list((target / "runs").glob("exp-*/evals/eval-*/report.json"))
    assert list((target / "exports").glob("export-*/smoke.json"))
    assert "->" in out.stdout.split("Try it")[-1]  # the trained run answered new sentences
    # A second run wipes only the folder the demo itself marked; a foreign folder is refused.
    again = subprocess.run([sys.executable, "-m", "brewslm_core.demo", str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "not made by the demo" in (again.stdout + again.stderr)
    assert (target / "brewslm.toml").is_file()
