"""Cleaning steps: each returns keep / a change / (drop, reason); a new step is a file + a config line."""

from __future__ import annotations

import pytest
from test_clean import commit, metadata

from brewslm_core.clean import CleanConfig, CleanConfigError, clean
from brewslm_core.clean.steps import KEEP, STEPS, Change, Doc, Drop
from brewslm_core.clean.steps.base import Keep


def _doc(text: str, i: int = 0) -> Doc:
    return Doc({"import_id": "imp1", "row_index": i, "shape": "text", "record": {"text": text}})


def test_each_step_returns_keep_a_change_or_a_drop() -> None:
    cfg = CleanConfig(pii_policy="drop")
    normalize = STEPS.get("normalize")(cfg)
    doc = _doc("<b>Hello</b>   world, write to a@b.example")
    verdict = normalize(doc)
    assert isinstance(verdict, Change) and "html" in verdict.actions
    assert doc.record["text"].startswith("Hello world") and doc.findings
    assert STEPS.get("pii_policy")(cfg)(doc) == Drop("pii")
    plain = _doc("plain words here")
    assert isinstance(normalize(plain), Keep) and STEPS.get("pii_policy")(cfg)(plain) is KEEP
    exact = STEPS.get("exact_dedup")(cfg)
    assert exact(_doc("same text", 0)) is KEEP
    assert exact(_doc("same text", 1)) == Drop("exact_duplicate", duplicate_of="imp1:0")
    assert STEPS.get("pii_policy")(CleanConfig(pii_policy="report")) is None  # off: no step
    assert STEPS.get("near_dedup")(CleanConfig(near_dup=False)) is None


def test_a_new_step_is_a_registered_factory_and_a_config_line(project) -> None:
    @STEPS.register("no_questions_test")
    def no_questions(cfg):  # a step written the way one in clean/steps/ is
        def step(doc: Doc):
            return Drop("question") if doc.text.rstrip().endswith("?") else KEEP
        return step

    try:
        commit(project, "text", [{"text": "Where is my card?"}, {"text": "My card arrived today."}])
        steps = (*CleanConfig().steps, "no_questions_test")
        report = clean(project, CleanConfig(steps=steps, chunk=False, quality=False))
        assert report.removed_by_reason == {"question": 1} and report.kept_rows == 1
        assert [m["removed_reason"] for m in metadata(project)] == ["question", None]
        assert clean(project, CleanConfig(chunk=False, quality=False)).kept_rows == 2  # not listed: off
    finally:
        STEPS._items.pop("no_questions_test")
    with pytest.raises(CleanConfigError, match="steps \\['no_such_step'\\] unknown"):
        CleanConfig(steps=("normalize", "no_such_step"))
