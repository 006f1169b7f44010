"""`brewslm introspect` and `brewslm map` through the real typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from brewslm_core.cli import app
from brewslm_core.mapping import read_committed

runner = CliRunner()


def invoke(*args: str):
    # A wide console so rich tables do not fold the words the tests look for.
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


def test_introspect_json_lists_hypotheses_best_first(shared_data):
    result = invoke("introspect", f"csv:{shared_data / 'banking77' / 'test.csv'}", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found[0]["shape"] == "classification"
    assert set(found[0]) == {"shape", "confidence", "rationale", "mapping"}
    assert found[0]["mapping"]["field_map"] == {"text": "text", "label": "category"}
    assert [h["confidence"] for h in found] == sorted((h["confidence"] for h in found),
                                                      reverse=True)


def test_introspect_table_and_clear_error(shared_data, tmp_path):
    hotpot = shared_data / "rag" / "hotpot_dev_distractor_v1_first53.json"
    result = invoke("introspect", f"json:{hotpot}")
    assert result.exit_code == 0, result.output
    assert "rag" in result.stdout and "supporting_facts" in result.stdout
    missing = invoke("introspect", f"csv:{tmp_path / 'nope.csv'}")
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_map_dry_run_json_is_exactly_the_counts(project, shared_data):
    result = invoke("map", project.root, str(shared_data / "spam" / "SMSSpamCollection"),
                    "--shape", "classification", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"total", "accepted", "rejected", "sentinel", "by_reason"}
    assert out["total"] == 5574 and out["accepted"] + out["rejected"] == 5574
    assert out["by_reason"] == {"duplicate_row": out["rejected"]}
    assert list(read_committed(project)) == []  # a dry run writes nothing


def test_map_dry_run_table_groups_rejections(project, shared_data):
    result = invoke("map", project.root, str(shared_data / "spam" / "SMSSpamCollection"),
                    "--shape", "classification", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "duplicate_row" in result.stdout and "Rejected rows by reason" in result.stdout


def test_map_fields_and_options_then_commit(project, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"body": f"note {i} about the weather", "tag": t}) + "\n"
                            for i, t in enumerate(["sun", "rain", "fog", "sun"])), "utf-8")
    args = ["map", project.root, f"jsonl:{path}", "--shape", "classification",
            "--field", "text=body", "--field", "label=tag",
            "--option", 'label_set=["sun", "rain"]']
    dry = invoke(*args, "--dry-run", "--json")
    assert json.loads(dry.stdout)["by_reason"] == {"label_not_in_set": 1}
    done = invoke(*args, "--commit", "--force", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert (result["accepted"], result["rejected"]) == (3, 1)
    assert [r["record"]["label"] for r in read_committed(project)] == ["sun", "rain", "sun"]


def test_map_commit_refused_below_threshold_exits_2(project, shared_data):
    locator = str(shared_data / "dirty" / "frictionless_issue-305.csv")
    result = invoke("map", project.root, locator, "--shape", "text", "--commit")
    assert result.exit_code == 2
    assert "--force" in result.output and "confident" in result.output
    assert list(read_committed(project)) == []


def test_map_usage_errors_exit_2(project, shared_data, tmp_path):
    locator = f"csv:{shared_data / 'banking77' / 'test.csv'}"
    both = invoke("map", project.root, locator, "--shape", "classification", "--dry-run",
                  "--commit")
    assert both.exit_code == 2 and "exactly one" in both.output
    bad_field = invoke("map", project.root, locator, "--shape", "classification", "--field",
                       "text", "--dry-run")
    assert bad_field.exit_code == 2 and "key=value" in bad_field.output
    not_project = invoke("map", tmp_path / "nowhere", locator, "--shape", "classification",
                         "--dry-run")
    assert not_project.exit_code == 2 and "not a BrewSLM project" in not_project.output
