"""The system Chromium the browser tests need: make test installs it, or says clearly what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE = REPO / ".ci" / "ensure-chromium"


def chromium_path() -> str:
    found = os.environ.get("BREWSLM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("no system Chromium: `make test` installs it (.ci/ensure-chromium); by hand: "
                    "`apt-get install -y chromium`, or set BREWSLM_CHROMIUM")
    return found


def run_ensure(tmp_path: Path, *args: str, with_chromium: bool) -> subprocess.CompletedProcess:
    """ensure-chromium on a PATH holding only `id` (and a Chromium when asked): no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "id").symlink_to(shutil.which("id"))
    if with_chromium:
        (bin_dir / "chromium").symlink_to(chromium_path())
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run([shutil.which("bash"), str(ENSURE), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_missing_chromium_fails_make_test_with_what_to_do(tmp_path: Path):
    proc = run_ensure(tmp_path, "--required", with_chromium=False)
    assert proc.returncode == 1
    assert "apt-get install -y chromium" in proc.stderr and "BREWSLM_CHROMIUM" in proc.stderr


def test_missing_chromium_only_warns_for_lab_and_dashboard(tmp_path: Path):
    proc = run_ensure(tmp_path, with_chromium=False)
    assert proc.returncode == 0 and proc.stderr.startswith("warning:")


def test_present_chromium_is_used_and_starts(tmp_path: Path):
    assert run_ensure(tmp_path, "--required", with_chromium=True).returncode == 0
    version = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True,
                             timeout=60, env={**os.environ})
    assert version.returncode == 0 and "Chromium" in version.stdout
