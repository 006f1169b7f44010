"""Coach stage ``cleaning``: the clean report (PII, outliers, removals) and whether it is current."""

from __future__ import annotations

from typing import Any

from ..contracts.coach import Suggestion
from .base import GENERATORS, navigate, ordered, pct, playbook, say
from .facts import Facts


def _pii_list(by_type: dict[str, int]) -> str:
    return ", ".join(f"{t} {n}" for t, n in sorted(by_type.items(), key=lambda kv: -kv[1]) if n)


def _config(report: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**dict(report.get("config") or {}), **changes}


@GENERATORS.register("cleaning")
def cleaning_suggestions(facts: Facts) -> list[Suggestion]:
    report = facts.clean_report
    committed = facts.committed_rows
    if report is None:
        if not committed:
            return [say("info", "Nothing to clean yet", "Commit an import first.",
                        navigate("Import data", "ingest"))]
        return [say("info", f"{committed} committed rows have not been cleaned",
                    "Cleaning normalises text, removes duplicates and outliers and scans for PII "
                    "(emails, phones, cards, IBANs, IPs) before Prepare.",
                    playbook("Clean with PII masking", "clean", config={"pii_policy": "mask"}))]
    out: list[Suggestion] = []
    n_in = int(report.get("input_rows", 0))
    if committed != n_in:
        out.append(say("warning", f"The clean report covers {n_in} rows; {committed} are committed",
                       f"{committed - n_in:+d} rows changed since the last clean, so Prepare uses "
                       "the raw committed rows instead of cleaned ones.",
                       playbook("Re-run clean with the same settings", "clean",
                                config=_config(report))))
    by_type = dict(report.get("pii_by_type") or {})
    docs = int(report.get("pii_docs", 0))
    policy = str(report.get("pii_policy", "report"))
    if report.get("blocked"):
        out.append(say("critical", f"PII in {docs} of {n_in} rows blocks the dataset",
                       f"Found {_pii_list(by_type)} under policy 'block'; Prepare refuses these "
                       f"rows. Mask them ([email], [phone] …) or drop the {docs} rows.",
                       playbook(f"Re-clean masking PII in {docs} rows", "clean",
                                config=_config(report, pii_policy="mask"))))
    elif docs and policy == "report":
        out.append(say("warning", f"{docs} of {n_in} rows ({pct(docs, n_in)}) contain PII",
                       f"Found {_pii_list(by_type)}; policy 'report' leaves it in the training "
                       "data, where a model can learn and repeat it.",
                       playbook("Re-clean masking PII", "clean",
                                config=_config(report, pii_policy="mask"))))
    outliers = dict(report.get("outliers") or {})
    if outliers.get("threshold_exceeded"):
        flagged = int(outliers.get("flagged", 0))
        cap = float(outliers.get("cap_fraction") or 0)
        share = flagged / n_in if n_in else 0
        new_cap = round(min(1.0, share + 0.01), 2)
        out.append(say("warning", f"{flagged} of {n_in} rows ({pct(flagged, n_in)}) score below "
                       f"quality {outliers.get('min_quality')}; none removed",
                       f"The outlier cap is {cap:.0%} of rows, so cleaning removed nothing and "
                       "raised cleaning_outlier_threshold_exceeded. Look at the low scorers; "
                       f"raise the cap to {new_cap:.0%} if they really are junk.",
                       playbook(f"Re-clean with the cap at {new_cap:.0%}", "clean",
                                config=_config(report, max_outlier_fraction=new_cap))))
    removed = dict(report.get("removed_by_reason") or {})
    for reason, count in sorted(removed.items(), key=lambda kv: -kv[1]):
        if count and count / max(n_in, 1) >= 0.2:
            out.append(say("warning", f"Cleaning removed {count} rows ({pct(count, n_in)}) as {reason}",
                           f"A fifth or more of the {n_in} rows went to one rule; check it is not "
                           "too aggressive (e.g. near-duplicate threshold).",
                           navigate("Open the cleaning review", "cleaning-review", reason=reason)))
    if not out:
        kept = int(report.get("kept_rows", 0))
        detail = ", ".join(f"{r} {n}" for r, n in removed.items() if n) or "nothing"
        out.append(say("info", f"Clean is current: kept {kept} of {n_in} rows",
                       f"Removed: {detail}. PII policy {policy!r}"
                       + (f", {docs} rows with PII handled." if docs else ", no PII found."),
                       navigate("Go to prepare", "prepare")))
    return ordered(out)
