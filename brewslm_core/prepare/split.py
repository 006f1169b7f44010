"""Train/eval split: deterministic by seed, grouped by text_hash, stratified where it can be.

Rows that share a text_hash form one group and always land on the same side, so no text is both
trained on and evaluated on. Groups are stratified by their dominant stratum (e.g. the label)
with scikit-learn; strata too small to appear on both sides stay in train.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from .profile import dominant


class SplitError(ValueError):
    """The rows cannot be split as asked (too few distinct rows, bad fraction)."""


def check_fraction(eval_fraction: float) -> float:
    fraction = float(eval_fraction)
    if not 0.0 < fraction < 1.0:
        raise SplitError(
            f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction!r}; "
            "0.1 keeps a tenth of the rows for evaluation"
        )
    return fraction


def split_groups(
    keys: Iterable[tuple[str, str | None]], eval_fraction: float, seed: int
) -> tuple[set[str], dict[str, Any]]:
    """``keys``: (text_hash, stratum or None) per row. Returns (eval hashes, split policy)."""
    from sklearn.model_selection import train_test_split

    fraction = check_fraction(eval_fraction)
    strata: dict[str, dict[str, int]] = defaultdict(dict)  # plain dicts: 1 per row group
    for text_hash, stratum in keys:
        counts = strata[text_hash]
        key = stratum if stratum is not None else ""
        counts[key] = counts.get(key, 0) + 1
    hashes = sorted(strata)  # sorted, so commit order does not change the split
    if len(hashes) < 2:
        raise SplitError(
            f"need at least 2 distinct rows (text hashes) to make train and eval splits, "
            f"found {len(hashes)}; commit more data first"
        )
    n_eval = min(len(hashes) - 1, max(1, round(fraction * len(hashes))))
    group_stratum = {h: dominant(strata[h]) for h in hashes}
    stratified = any(group_stratum.values())
    policy: dict[str, Any] = {
        "method": "grouped_by_text_hash",
        "eval_fraction": fraction,
        "groups": len(hashes),
        "eval_groups": n_eval,
        "stratified": False,
        "train_only_strata": [],
        "note": "",
    }
    if not stratified:
        _, eval_hashes = train_test_split(
            hashes, test_size=n_eval, random_state=seed, shuffle=True
        )
        return set(eval_hashes), policy

    sizes = Counter(group_stratum.values())
    rare = sorted(s for s, n in sizes.items() if n < 2)  # cannot be on both sides
    eligible = [h for h in hashes if sizes[group_stratum[h]] >= 2]
    policy["train_only_strata"] = rare
    try:
        if n_eval >= len(eligible):
            raise ValueError(f"only {len(eligible)} groups are in strata with 2 or more groups")
        _, eval_hashes = train_test_split(
            eligible,
            test_size=n_eval,
            random_state=seed,
            shuffle=True,
            stratify=[group_stratum[h] for h in eligible],
        )
        policy["stratified"] = True
        return set(eval_hashes), policy
    except ValueError as exc:
        # Typically: fewer eval rows than strata. Fall back to a seeded random pick that still
        # leaves every stratum at least one group in train, so no label goes unseen in training.
        policy["note"] = (
            f"stratification not possible ({exc}); used a seeded grouped split that keeps "
            "every stratum in train"
        )
        picked = _keep_each_stratum(eligible, group_stratum, n_eval, seed)
        policy["eval_groups"] = len(picked)
        return picked, policy


def _keep_each_stratum(
    hashes: list[str], group_stratum: dict[str, str], n_eval: int, seed: int
) -> set[str]:
    import random

    order = list(hashes)
    random.Random(seed).shuffle(order)
    left_in_train = Counter(group_stratum[h] for h in hashes)
    picked: set[str] = set()
    for h in order:
        if len(picked) == n_eval:
            break
        if left_in_train[group_stratum[h]] > 1:
            left_in_train[group_stratum[h]] -= 1
            picked.add(h)
    return picked
