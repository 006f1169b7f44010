"""Gate-policy checks: can the finished run be judged? (eval split, gold set, eval pack)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ..contracts.preflight import PreflightItem

# Gold-set thresholds shared with the Coach's gold-set generator: one definition in contracts.
from ..contracts.thresholds import (  # noqa: F401 - the floor/ceiling re-exported for callers
    GOLD_ROW_COMFORTABLE_MIN,
    GOLD_ROW_THIN_MAX,
    SUGGESTED_TOPUP_CEILING,
    SUGGESTED_TOPUP_FLOOR,
    topup,
)

if TYPE_CHECKING:
    from ..contracts.prepare import Manifest
    from ..project import Project
    from ..train import TrainConfig

# Fewer eval rows than this make a pass rate swing by more than ~5 points per row or two.
MIN_EVAL_ROWS = 30
EVALUATE_PACKAGE = "brewslm_core.evaluate"


def _declared_gates(project: Project) -> tuple[bool, str]:
    """(gates declared?, where we looked). Gates live in the evaluate stage's eval pack; a
    project may also declare thresholds in its ``[gates]`` table (besides ``policy``)."""
    table = {k: v for k, v in project.config.get("gates", {}).items() if k != "policy"}
    if table:
        return True, f"[gates] in brewslm.toml ({', '.join(sorted(table))})"
    if importlib.util.find_spec(EVALUATE_PACKAGE) is None:
        return False, "the evaluate stage is not available yet"
    evaluate = importlib.import_module(EVALUATE_PACKAGE)
    loader = getattr(evaluate, "load_eval_pack", None)
    if loader is None:
        return False, f"{EVALUATE_PACKAGE} has no load_eval_pack(project)"
    try:
        pack: Any = loader(project)
    except (OSError, ValueError, LookupError) as exc:
        return False, f"no eval pack ({exc})"
    gates = getattr(pack, "gates", None) if pack is not None else None
    if gates is None and isinstance(pack, dict):
        gates = pack.get("gates")
    return bool(gates), "the project's eval pack"


def check_gates(project: Project, manifest: Manifest, cfg: TrainConfig, found: Any) -> None:
    before = (len(found.blockers), len(found.warnings))
    eval_rows = int(manifest.counts.get("eval", 0))
    if eval_rows == 0:
        found.block(PreflightItem(
            check="gates", code="eval_split_missing",
            message="the manifest has no eval rows: nothing can score the run or gate it",
            fix="re-run prepare with an eval fraction above 0 (e.g. --eval-fraction 0.1)",
        ))
    elif eval_rows < MIN_EVAL_ROWS:
        found.warn(PreflightItem(
            check="gates", code="eval_split_small",
            message=f"only {eval_rows} eval rows: scores will be noisy",
            fix=f"import more data or raise the eval fraction to reach {MIN_EVAL_ROWS}+ rows",
            details={"eval_rows": eval_rows},
        ))
    gold = int(manifest.counts.get("gold", 0))
    if gold <= GOLD_ROW_THIN_MAX:
        found.warn(PreflightItem(
            check="gates", code="gold_set_missing" if gold == 0 else "gold_set_thin",
            message=(f"the gold set has {gold} rows (thin: {GOLD_ROW_THIN_MAX} or fewer); "
                     "drift checks and promotion gates lean on it"),
            fix=f"commit a gold import of about {topup(gold)} more labeled rows",
            suggestion={"add_gold_rows": topup(gold)},
            details={"gold_rows": gold},
        ))
    elif gold < GOLD_ROW_COMFORTABLE_MIN:
        found.warn(PreflightItem(
            check="gates", code="gold_set_below_comfortable",
            message=f"the gold set has {gold} rows; {GOLD_ROW_COMFORTABLE_MIN}+ is comfortable",
            fix=f"commit about {topup(gold)} more gold rows",
            suggestion={"add_gold_rows": topup(gold)},
            details={"gold_rows": gold},
        ))
    declared, where = _declared_gates(project)
    if not declared:
        found.warn(PreflightItem(
            check="gates", code="gates_not_declared",
            message=f"no promotion gates are declared yet ({where})",
            fix="declare gates in an eval pack (or thresholds in [gates] of brewslm.toml) "
                "before promoting a model",
        ))
    stats = manifest.token_stats
    if stats is not None and cfg.max_length < stats.p95:
        found.warn(PreflightItem(
            check="gates", code="rows_truncated",
            message=f"max_length {cfg.max_length} is below the data's p95 length ({stats.p95} "
                    "tokens): more than 5% of rows lose their tail",
            fix=f"raise max_length to about {stats.p95}", suggestion={"max_length": stats.p95},
        ))
    if (len(found.blockers), len(found.warnings)) == before:
        found.ok("gates", f"{eval_rows} eval rows, {gold} gold rows, gates from {where}")
