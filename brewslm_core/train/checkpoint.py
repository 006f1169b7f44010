"""Atomic checkpoints: write a temp folder, fsync, rename. A crash mid-save never harms the last one.

A checkpoint holds the trainable weights (safetensors), optimizer + scheduler state and RNG
states (torch.save, loaded with weights_only=True), and a meta.json written last. The format does
not depend on how a run was laid out: weights are full tensors by name, the optimizer state is
keyed by trainable-parameter index, and a multi-process run adds every rank's RNG state
(``rng_ranks``) next to rank 0's (``rng``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common import fsync_dir

if TYPE_CHECKING:
    import torch

PREFIX = "step-"
META = "meta.json"


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(path)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": _np_state(np.random.get_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state(state: tuple) -> tuple:
    import torch

    kind, keys, pos, has_gauss, gauss = state
    # a tensor, so the state file loads with weights_only=True
    return (kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(gauss))


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``weights`` (full trainable tensors by name) and ``state`` (optimizer, scheduler,
    rng, …) as ``step-<step>``; keep the newest ``keep`` checkpoints."""
    import torch
    from safetensors.torch import save_file

    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{step}"
    tmp = ckpt_root / f".tmp-{PREFIX}{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(weights, str(tmp / "weights.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / META).write_text(json.dumps({**meta, "step": step}, indent=2), encoding="utf-8")
    _fsync_tree(tmp)
    if final.exists():  # same step saved twice (resume then cancel): replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(ckpt_root)
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp folders and folders without meta are ignored)."""
    if not ckpt_root.is_dir():
        return []
    found = []
    for p in ckpt_root.iterdir():
        if p.is_dir() and p.name.startswith(PREFIX) and (p / META).is_file():
            try:
                found.append((int(p.name[len(PREFIX) :]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(trainable weights by name, optimizer/scheduler/RNG state, meta) of one checkpoint."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(path / "weights.safetensors"))
    state = torch.load(path / "state.pt", weights_only=True)
    return weights, state, json.loads((path / META).read_text(encoding="utf-8"))


def rng_for_rank(state: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """This rank's RNG state: its own when the checkpoint came from the same number of ranks
    (dropout draws differ per rank), else rank 0's."""
    ranks = state.get("rng_ranks") or []
    return ranks[rank] if len(ranks) == world and rank < len(ranks) else state["rng"]
