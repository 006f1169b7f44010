"""Dry run and commit through the real ingest, store and event log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brewslm_core.contracts import ROW_REJECT_CODES, SHAPE_TASK_PROFILE
from brewslm_core.mapping import (
    LowConfidenceError,
    MappingError,
    commit,
    dry_run,
    read_committed,
    read_imports,
    record_text,
    text_hash,
)
from brewslm_core.mapping.shapes import RECORD_KEYS

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return f"jsonl:{path}"


@pytest.fixture()
def mixed_jsonl(tmp_path) -> str:
    """Classification rows with one of each problem a row can have."""
    lines = [json.dumps({"text": f"message number {i} about cards", "label": ["a", "b"][i % 2]})
             for i in range(16)]
    lines += [
        '{"text": "broken json', # unparseable
        json.dumps({"text": "   ", "label": "a"}),  # empty_text
        json.dumps({"label": "a"}),  # missing_field
        json.dumps({"text": "message number 3 about cards", "label": "b"}),  # duplicate_row
        json.dumps({"text": "a label outside", "label": "zzz"}),  # label_not_in_set
        json.dumps({"text": ["not", "text"], "label": "a"}),  # type_mismatch
    ]
    return write_jsonl(tmp_path / "mixed.jsonl", lines)


FIELDS = {"text": "text", "label": "label"}
OPTIONS = {"label_set": ["a", "b"]}


def test_dry_run_accounts_for_every_row_by_reason(mixed_jsonl):
    report = dry_run(mixed_jsonl, "classification", FIELDS, OPTIONS, examples_per_reason=2,
                     sample_size=5)
    assert (report.total, report.accepted, report.rejected, report.sentinel) == (22, 16, 6, 1)
    assert report.by_reason == {"unparseable_row": 1, "empty_text": 1, "missing_field": 1,
                                "duplicate_row": 1, "label_not_in_set": 1, "type_mismatch": 1}
    assert set(report.by_reason) <= set(ROW_REJECT_CODES)
    assert len(report.accepted_sample) == 5
    dup = next(g for g in report.groups if g.reason == "duplicate_row")
    assert dup.examples[0].row_index == 19 and dup.examples[0].raw["label"] == "b"
    assert "row 3 of this import" in dup.examples[0].detail
    sentinel = next(g for g in report.groups if g.reason == "unparseable_row").examples[0]
    assert "broken json" in sentinel.raw
    json.dumps(report.to_dict())


def test_drop_reasons_hide_examples_but_keep_counts(mixed_jsonl):
    full = dry_run(mixed_jsonl, "classification", FIELDS, OPTIONS)
    dropped = dry_run(mixed_jsonl, "classification", FIELDS, OPTIONS,
                      drop_reasons=["empty_text", "duplicate_row"])
    assert dropped.by_reason == full.by_reason
    assert (dropped.total, dropped.accepted, dropped.rejected) == (full.total, full.accepted,
                                                                   full.rejected)
    assert dropped.dropped_reasons == ("empty_text", "duplicate_row")
    groups = {g.reason: g for g in dropped.groups}
    assert groups["empty_text"].count == 1 and groups["empty_text"].examples == ()
    assert groups["missing_field"].examples
    with pytest.raises(MappingError, match="unknown reason code"):
        dry_run(mixed_jsonl, "classification", FIELDS, drop_reasons=["nope"])


def test_unknown_shape_and_unmappable_source_say_what_to_do(shared_data):
    locator = f"csv:{shared_data / 'banking77' / 'test.csv'}"
    with pytest.raises(ValueError, match="did you mean 'classification'"):
        dry_run(locator, "clasification")
    with pytest.raises(MappingError, match="brewslm introspect"):
        dry_run(locator, "rag")


def test_commit_appends_emits_event_and_second_commit_is_all_duplicates(project, shared_data):
    locator = f"csv:{shared_data / 'banking77' / 'test.csv'}"
    first = commit(project, locator, "classification")
    assert (first.accepted, first.rejected) == (3080, 0)
    assert first.import_id.startswith("imp-") and first.written_path == str(
        project.synthetic_path)
    rows = list(read_committed(project))
    assert len(rows) == 3080
    row = rows[0]
    assert set(row) == {"import_id", "row_index", "shape", "task_profile", "config_id",
                        "text_hash", "record"}
    assert row["task_profile"] == SHAPE_TASK_PROFILE["classification"]
    assert set(row["record"]) == set(RECORD_KEYS["classification"])
    assert row["text_hash"] == text_hash("classification", row["record"])
    assert record_text("classification", row["record"]) == row["record"]["text"]

    event = project.events.get(first.event_id)
    assert (event.stage, event.severity, event.reason_code) == ("ingestion", "info",
                                                               "dataset_import_run")
    assert {"source", "locator", "mapper", "accepted", "rejected", "written_path",
            "config_id"} <= set(event.payload)
    assert event.payload["mapper"] == "classification" and event.payload["accepted"] == 3080
    assert event.payload["config_id"] == first.config_id

    again = commit(project, locator, "classification")
    assert (again.accepted, again.rejected) == (0, 3080)
    assert len(list(read_committed(project))) == 3080
    imports = read_imports(project)
    assert [i["import_id"] for i in imports] == [first.import_id, again.import_id]
    # A dry run inside the project sees the committed rows as duplicates too.
    report = dry_run(locator, "classification", project=project)
    assert report.by_reason == {"duplicate_row": 3080}
    assert "already committed" in report.groups[0].examples[0].detail


def test_low_confidence_commit_is_refused_without_force(project, shared_data):
    locator = str(shared_data / "dirty" / "frictionless_issue-305.csv")
    with pytest.raises(LowConfidenceError, match="--force") as info:
        commit(project, locator, "text")
    assert info.value.confidence < 0.8
    assert read_imports(project) == []
    failed = project.events.list(severity="error")
    assert list(failed["reason_code"]) == ["dataset_import_failed"]

    forced = commit(project, locator, "text", force=True, gold=True)
    assert forced.accepted > 0 and forced.accepted + forced.rejected == 338
    imp = read_imports(project)[0]
    assert imp["forced"] is True and imp["gold"] is True and imp["shape"] == "text"


def test_failure_before_writing_emits_import_failed(project, tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        commit(project, f"jsonl:{tmp_path / 'missing.jsonl'}", "text")
    events = project.events.list()
    assert list(events["reason_code"]) == ["dataset_import_failed"]
    assert "missing.jsonl" in events["summary"][0]


KILL_SCRIPT = """
import sys
from brewslm_core import Project
from brewslm_core.mapping import commit
commit(Project.open(sys.argv[1]), sys.argv[2], "classification", {"text": "text", "label": "label"},
       force=True)
"""


def test_kill_during_commit_leaves_nothing_visible_and_next_commit_works(project, shared_data,
                                                                        tmp_path):
    small = f"csv:{shared_data / 'banking77' / 'test.csv'}"
    commit(project, small, "classification")
    before = list(read_committed(project))
    committed_bytes = project.synthetic_path.stat().st_size

    big = tmp_path / "big.jsonl"
    with open(big, "w", encoding="utf-8") as fh:
        for i in range(150_000):
            fh.write(json.dumps({"text": f"row {i} of a rather large import", "label": "x"}) + "\n")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(project.root), f"jsonl:{big}"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 300  # a busy machine is slow to start writing
        while time.monotonic() < deadline and proc.poll() is None:
            if project.synthetic_path.stat().st_size > committed_bytes + 200_000:
                break  # rows are being written, the import record is not
            time.sleep(0.005)
        assert proc.poll() is None, "the commit finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert project.synthetic_path.stat().st_size > committed_bytes  # a torn tail is on disk
    assert list(read_committed(project)) == before
    assert len(read_imports(project)) == 1

    small_jsonl = write_jsonl(tmp_path / "next.jsonl", [
        json.dumps({"text": f"a fresh row {i}", "label": "y"}) for i in range(5)])
    after = commit(project, small_jsonl, "classification", FIELDS, force=True)
    assert after.accepted == 5
    rows = list(read_committed(project))
    assert rows[:len(before)] == before and len(rows) == len(before) + 5
    with open(project.synthetic_path, encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == len(before) + 5  # the orphaned tail was cut off


CONCURRENT_SCRIPT = """
import sys
from brewslm_core import Project
from brewslm_core.mapping import commit
print(commit(Project.open(sys.argv[1]), sys.argv[2], "classification").accepted)
"""


def test_concurrent_commits_of_one_file_take_each_row_once(project, shared_data):
    locator = f"csv:{shared_data / 'banking77' / 'test.csv'}"
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT, str(project.root), locator],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    accepted = sorted(int(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert accepted == [0, 3080]  # the later commit saw the earlier one's rows as duplicates
    assert len(list(read_committed(project))) == 3080
    assert len(project.events.list(stage="ingestion")) == 2
