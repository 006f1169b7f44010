"""The one-way layers of docs/architecture.md, as import-linter contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports is missing: pip install -e '.[dev]' (import-linter)"
    return exe


def test_import_contracts_hold() -> None:
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_a_stage_reaching_into_another_is_caught(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the tree where clean imports mapping's internals breaks."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "brewslm_core", tree / "brewslm_core",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copytree(ROOT / "brewslm_widgets", tree / "brewslm_widgets",
                    ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    bad = tree / "brewslm_core" / "clean" / "reach_in.py"
    bad.write_text("from ..mapping.store import read_imports  # noqa: F401\n"
                   "from ..train import TrainConfig  # noqa: F401  (a data stage importing a model stage)\n")
    env = {"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=tree, capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "brewslm_core.clean.reach_in -> brewslm_core.mapping.store" in out.stdout
    assert "brewslm_core.clean.reach_in -> brewslm_core.train" in out.stdout
