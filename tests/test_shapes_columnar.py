"""The columnar dry run (mapping/columnar.py) gives the per-row path's verdicts row for row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brewslm_core.contracts import TransformedRow
from brewslm_core.ingest import open_source
from brewslm_core.mapping import commit, dry_run, map_rows
from brewslm_core.mapping.columnar import row_verdicts

BAD_TEXTS = ["", "   ", "\u3000\xa0", None, ["a", "list"], {"an": "object"}, 7, 2.5, True]


def _lines(tmp_path: Path, name: str, rows: list) -> Path:
    path = tmp_path / name
    out = []
    for row in rows:
        out.append(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _classification_rows() -> list:
    rows: list = [{"text": f"message {i} about the card ü😀 e\u0301", "label": ["a", "b"][i % 2]}
                  for i in range(12)]
    rows += [{"text": t, "label": "a"} for t in BAD_TEXTS]
    rows += [{"text": "label oddities one", "label": v} for v in
             (1, 1.0, 2.5, False, None, "  a  ", "\u2003b", [], {"x": 1}, "zzz", "")]
    rows += [
        {"label": "a"},  # missing text
        {"text": "missing the label"},
        {"text": "message 3 about the card ü😀 e\u0301", "label": "b"},  # duplicate of row 3
        {"text": "message 3 about the card ü😀 e\u0301", "label": "a"},  # same text, other label
        {"text": "label oddities one", "label": "1"},  # the same record as label 1 above
        "",
        "   ",
        [1, 2],
        '"a bare string"',
        {"text": "tab\tand\nnewline \\ \" quote", "label": "a", "extra": {"nested": [1, 2]}},
        {"text": "tab\tand\nnewline \\ \" quote", "label": "a"},  # duplicate record, other extras
        '{"text": "first spelling", "label": "b", "text": "second spelling"}',  # key twice:
        {"text": "second spelling", "label": "b"},  # the last value counts, so this is a duplicate
        {"text": "a value spelled text", "label": "text"},
        {"text": "big number label", "label": 12345678901234567890},
    ]
    return rows


def _per_row(locator: str, shape: str, fmap: dict, opts: dict, committed=None) -> list:
    conn = open_source(locator)
    return [(item.row_index, None if isinstance(item, TransformedRow) else item.reason)
            for item in map_rows(conn, shape, fmap, opts, committed)]


CASES = [
    ("classification", {"text": "text", "label": "label"}, {}),
    ("classification", {"text": "text", "label": "label"}, {"label_set": ["a", "b", "1"]}),
    ("text", {"text": "text"}, {}),
    ("prompt_completion", {"prompt": "text", "completion": "label"}, {}),
    ("alpaca", {"instruction": "text", "input": "label", "output": "text"}, {}),
]


@pytest.mark.parametrize(("shape", "fmap", "opts"), CASES)
def test_columnar_and_per_row_agree_row_for_row(tmp_path, shape, fmap, opts):
    path = _lines(tmp_path, "mixed.jsonl", _classification_rows())
    locator = f"jsonl:{path}"
    fast = row_verdicts(open_source(locator), shape, fmap, opts)
    assert fast is not None, "the columnar path should apply to this file"
    assert [(v.row_index, v.reason) for v in fast] == _per_row(locator, shape, fmap, opts)
    assert {v.reason for v in fast} > {None, "duplicate_row"}
    fast_report = dry_run(locator, shape, fmap, opts, examples_per_reason=3)
    slow_report = dry_run(locator, shape, fmap, opts, examples_per_reason=3, columnar=False)
    assert fast_report.to_dict() == slow_report.to_dict()


def test_alpaca_system_and_optional_input(tmp_path):
    rows = [{"instruction": "Say hi.", "input": v, "output": "hi", "system": s}
            for v in ("", " ", None, "to Ann", 3) for s in ("", "Be brief.", None, "  ")]
    rows.append({"instruction": "Say hi.", "output": "hi"})
    path = _lines(tmp_path, "alpaca.jsonl", rows)
    locator = f"jsonl:{path}"
    fmap = {"instruction": "instruction", "input": "input", "output": "output", "system": "system"}
    fast = row_verdicts(open_source(locator), "alpaca", fmap, {})
    assert [(v.row_index, v.reason) for v in fast] == _per_row(locator, "alpaca", fmap, {})
    assert dry_run(locator, "alpaca", fmap, sample_size=40).to_dict() == dry_run(
        locator, "alpaca", fmap, sample_size=40, columnar=False).to_dict()


def test_rows_committed_before_are_duplicates_on_both_paths(project, tmp_path):
    first = _lines(tmp_path, "first.jsonl", _classification_rows()[:8])
    fmap = {"text": "text", "label": "label"}
    commit(project, f"jsonl:{first}", "classification", fmap, force=True)
    locator = f"jsonl:{_lines(tmp_path, 'second.jsonl', _classification_rows())}"
    fast = dry_run(locator, "classification", fmap, project=project)
    slow = dry_run(locator, "classification", fmap, project=project, columnar=False)
    assert fast.to_dict() == slow.to_dict()
    assert fast.by_reason["duplicate_row"] >= 8


def test_broken_lines_fall_back_to_the_per_row_path(tmp_path):
    rows = _classification_rows()[:5] + ['{"text": "broken json', {"text": "after", "label": "a"}]
    locator = f"jsonl:{_lines(tmp_path, 'broken.jsonl', rows)}"
    fmap = {"text": "text", "label": "label"}
    assert row_verdicts(open_source(locator), "classification", fmap, {}) is None
    report = dry_run(locator, "classification", fmap)
    assert report.by_reason == {"unparseable_row": 1} and report.total == 7


def test_whole_record_dedup_keeps_rows_that_differ_in_tools_or_answers(tmp_path):
    conv = [{"from": "human", "value": "rate?"}, {"from": "gpt", "value": "0.92"}]
    rows = [{"conversations": conv, "tools": '[{"name": "a"}]'},
            {"conversations": conv, "tools": '[{"name": "b"}]'},
            {"conversations": conv, "tools": '[{"name": "b"}]'}]
    locator = f"jsonl:{_lines(tmp_path, 'tools.jsonl', rows)}"
    report = dry_run(locator, "sharegpt", {"messages": "conversations", "tools": "tools"},
                     {"role_key": "from", "content_key": "value"})
    assert (report.accepted, report.by_reason) == (2, {"duplicate_row": 1})
    assert [r.record["tools"] for r in report.accepted_sample] == [[{"name": "a"}], [{"name": "b"}]]
    ctx = "Paris is in France."
    qa = [{"question": "Where is Paris?", "context": ctx,
           "answers": [{"text": t, "answer_start": ctx.index(t)}]} for t in ("France", "in France")]
    qa_loc = f"jsonl:{_lines(tmp_path, 'qa.jsonl', qa)}"
    assert dry_run(qa_loc, "extractive_qa", {"question": "question", "context": "context",
                                               "answers": "answers"}).accepted == 2


def test_clean_keeps_chats_that_differ_only_in_tools(project):
    from brewslm_core.clean import CleanConfig, clean

    locator = str(Path(__file__).parent / "data" / "shapes" / "glaive_tools.jsonl")
    result = commit(project, locator, "sharegpt")
    assert result.accepted == 4
    report = clean(project, CleanConfig(pii=False, chunk=False))
    assert report.removed_by_reason.get("exact_duplicate", 0) == 0
    assert report.removed_by_reason.get("near_duplicate", 0) == 0
