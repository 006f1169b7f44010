"""The bundled demo data: its contents as documented, and the demo path map -> prepare."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from importlib.resources import files
from pathlib import Path

import pytest

from brewslm_core import Project
from brewslm_core.prepare import prepare

DATA = files("brewslm_core") / "data"
INTENTS = {"order_status", "refund_request", "subscription_change", "brewing_help",
           "product_question", "shipping_address", "wholesale_inquiry", "complaint"}
RAGGED_LABEL = "is the house blend ok for a moka pot"


def intent_lines() -> list[list[str]]:
    with DATA.joinpath("brew_intents.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_brew_intents_has_the_documented_rows_and_flaws() -> None:
    lines = intent_lines()
    assert lines[0] == ["text", "intent"]
    body = lines[1:]
    assert len(body) == 407
    ragged = [i + 2 for i, r in enumerate(body) if len(r) != 2]
    empty = [i + 2 for i, r in enumerate(body) if len(r) == 2 and not r[0].strip()]
    seen: set[tuple[str, ...]] = set()
    dups = []
    for i, r in enumerate(body):
        if tuple(r) in seen:
            dups.append(i + 2)
        seen.add(tuple(r))
    assert ragged == [245] and empty == [134, 329] and dups == [117, 192, 298, 385]
    clean = {tuple(r) for r in body if len(r) == 2 and r[0].strip()}
    assert len(clean) == 400
    assert Counter(intent for _, intent in clean) == {intent: 50 for intent in INTENTS}
    texts = [t for t, _ in clean]
    assert min(map(len, texts)) < 25 < 90 < max(map(len, texts))  # short and long messages


def test_demo_data_holds_no_personal_data() -> None:
    text = DATA.joinpath("brew_intents.csv").read_text(encoding="utf-8")
    text += DATA.joinpath("brew_instruct.jsonl").read_text(encoding="utf-8")
    assert "@" not in text  # no e-mail addresses
    assert not re.search(r"\d[\d ()-]{8,}\d", text)  # no phone-number-like digit runs


def test_brew_instruct_records() -> None:
    records = [json.loads(line) for line in
               DATA.joinpath("brew_instruct.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 61
    assert all(set(r) == {"instruction", "input", "output"} for r in records)
    assert all(r["instruction"].strip() and r["output"].strip() for r in records)
    assert sum(1 for r in records if r["input"]) == 17
    assert len({(r["instruction"], r["input"]) for r in records}) == 61
    readme = DATA.joinpath("README.md").read_text(encoding="utf-8")
    assert "CC0" in readme and "61 alpaca-style records" in readme


def test_demo_intents_map_then_prepare(tmp_path: Path) -> None:
    from brewslm_core.mapping import commit, dry_run

    project = Project.create(tmp_path / "demo")
    locator = f"csv:{DATA / 'brew_intents.csv'}"
    report = dry_run(locator, "classification")
    assert report.total == 407
    assert report.by_reason.get("duplicate_row") == 4 and report.by_reason.get("empty_text") == 2
    done = commit(project, locator, "classification")
    m = prepare(project, seed=1)

    assert m.task_profile == "classification" and m.output_schema.scoring_mode == "label_match"
    assert m.counts["train"] + m.counts["eval"] == done.accepted
    assert m.split_policy["stratified"] is True
    extra = set(m.label_set) - INTENTS
    assert INTENTS <= set(m.label_set) and extra <= {RAGGED_LABEL}
    assert sorted(extra) == m.split_policy["train_only_strata"]  # the flaw stays visible
    for intent in INTENTS:  # 50 rows each, 10% eval, stratified
        assert m.label_counts["eval"][intent] in (4, 5, 6)
    assert m.supervision_audit.by_reason == {}
    assert m.token_stats.max < m.max_length


@pytest.mark.slow
def test_demo_instruct_fits_256_tokens(tmp_path: Path) -> None:
    from brewslm_core.mapping import commit

    project = Project.create(tmp_path / "demo")
    commit(project, f"jsonl:{DATA / 'brew_instruct.jsonl'}", "alpaca")
    m = prepare(project, max_length=256)
    assert m.task_profile == "seq2seq" and m.shapes == ("alpaca",)
    assert m.output_schema.target_field == "messages"
    assert m.counts["train"] + m.counts["eval"] == 61
    assert m.supervision_audit.by_reason == {} and m.token_stats.max <= 256
