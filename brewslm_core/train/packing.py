"""Batch planning: which examples go into which step, and how a step's examples fill rows.

Two ideas remove almost all padding without changing what the model sees:
- *bucketing*: each epoch is shuffled and sorted by length (stably, so equal lengths stay in
  random order) before it is cut into batches, so a batch holds examples of near-equal length,
  and the batches are then trained in random order (as fairseq's length batching does). A
  window of ``window_batches`` batches sorts each slice of the shuffled epoch on its own
  instead: more mixed lengths per batch, more padding (banking77 at batch 32: the whole epoch
  0.9% padding, 64-batch windows 3.8%, 16-batch windows 10%);
- *packing*: the examples of one batch are then laid side by side in rows no longer than the
  batch's longest example (first-fit decreasing). Handlers keep the examples apart with a
  block-diagonal mask and per-example position ids.
The plan is a pure function of (lengths, batch size, seed, epoch), which is what makes a
resumed run see the same data order as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE = -100  # target value that carries no loss (prompt tokens, padding)

STRATEGIES = ("bucket", "random")


def plan_epoch(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    strategy: str = "bucket",
    window_batches: int = 0,
) -> list[list[int]]:
    """Example indices per batch for one epoch, in the order they are trained.
    ``window_batches``: batches per length-sorted window (bucketing); 0 = the whole epoch."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown batching strategy {strategy!r}; use one of {STRATEGIES}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if strategy == "random":
        return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    lens = np.asarray(lengths)
    window = batch_size * window_batches if window_batches > 0 else max(n, 1)
    batches: list[list[int]] = []
    for start in range(0, n, window):
        chunk = order[start : start + window]
        # stable sort keeps the random order among equal lengths
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    # train the batches in random order so the loss curve does not follow example length
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: positions (into ``lengths``) per row, each row's sum <= capacity.

    An item longer than ``capacity`` gets a row of its own (callers truncate before packing).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        need = lengths[i]
        for r, room in enumerate(free):
            if need <= room:
                rows[r].append(i)
                free[r] -= need
                break
        else:
            rows.append([i])
            free.append(max(capacity - need, 0))
    return rows
