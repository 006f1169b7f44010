"""Helpers for the browser tests (a plain module: two conftest.py files share one name)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def record_latency(name: str, values_ms: list[float]) -> None:
    """Print and keep round-trip figures (click -> kernel/engine -> re-render) for the report."""
    ARTIFACTS.mkdir(exist_ok=True)
    values = sorted(values_ms)
    line = {
        "name": name,
        "n": len(values),
        "median_ms": values[len(values) // 2],
        "max_ms": values[-1],
        "all_ms": values,
    }
    print(f"\n[round-trip] {json.dumps(line)}")
    with open(ARTIFACTS / "latency.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def write_notebook(path: Path, cells: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
