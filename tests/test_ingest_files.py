"""Ingest on the real text data files: exact row counts, sentinels, decoded text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from brewslm_core.contracts import SentinelRow, SourceDescription
from brewslm_core.ingest import CONNECTORS, IngestError, open_source, sample_rows

# (path under shared data, locator prefix or "" for a bare path, kind, rows, sentinel rows)
REAL_FILES = [
    ("banking77/train.csv", "csv:", "csv", 10003, 0),
    ("banking77/test.csv", "", "csv", 3080, 0),
    ("spam/SMSSpamCollection", "", "tsv", 5574, 0),
    ("spam/SMSSpamCollection", "tsv:", "tsv", 5574, 0),
    ("ner/restaurant8k_span_train_3.json", "json:", "json", 1024, 0),
    ("instruct/llamafactory_alpaca_en_demo.json", "", "json", 999, 0),
    ("instruct/bloom-lora_alpaca_data_1k.json", "json:", "json", 1000, 0),
    ("instruct/stanford_alpaca_seed_tasks.jsonl", "jsonl:", "jsonl", 175, 0),
    ("instruct/llamafactory_glaive_toolcall_en_demo_sharegpt.json", "", "json", 300, 0),
    ("instruct/llamafactory_identity_templated.json", "", "json", 91, 0),
    ("preference/hh-rlhf_harmless-base_test.jsonl.gz", "", "jsonl", 2312, 0),
    ("preference/hh-rlhf_harmless-base_test.jsonl.gz", "jsonl:", "jsonl", 2312, 0),
    ("preference/llamafactory_dpo_en_demo.json", "", "json", 300, 0),
    ("preference/llamafactory_kto_en_demo.json", "json:", "json", 300, 0),
    ("seq2seq/tatoeba_manythings_hin-eng.txt", "", "tsv", 3117, 0),
    ("seq2seq/dialogsum.dev.jsonl", "", "jsonl", 500, 0),
    ("rag/hotpot_dev_distractor_v1_first53.json", "", "json", 53, 0),
    ("qa_squad/squad_v2_dev_Normans_subset.json", "", "json", 208, 0),
    ("safety/davidson_hate_offensive_labeled_data.csv", "", "csv", 24783, 0),
    ("vision_language/easy_vqa_test/questions.json", "", "json", 9673, 0),
    ("vision_language/llamafactory_mllm_demo/mllm_demo.json", "", "json", 6, 0),
    ("banking77/categories.json", "", "json", 77, 0),
    ("dirty/frictionless_issue-647.csv.txt", "", "csv", 882, 0),
    ("dirty/frictionless_issue-811.csv", "csv:", "csv", 7904, 0),
    ("dirty/frictionless_issue-305.csv", "", "csv", 338, 0),
    ("dirty/invalid_json_unquoted_value_alpaca_data.json", "", "json", 8, 1),
    ("dirty/truncated_json_hotpot_dev_distractor_v1.json", "json:", "json", 54, 1),
]


@pytest.mark.parametrize(("rel", "prefix", "kind", "rows", "sentinels"), REAL_FILES,
                         ids=[f"{p}{r}" for r, p, *_ in REAL_FILES])
def test_real_file_counts(shared_data: Path, rel, prefix, kind, rows, sentinels):
    src = open_source(prefix + str(shared_data / rel))
    assert src.kind == kind
    loaded = list(src.load())
    assert len(loaded) == rows
    assert sum(isinstance(r, SentinelRow) for r in loaded) == sentinels
    assert all(isinstance(r, (dict, SentinelRow)) for r in loaded)


def test_describe_counts_fields_and_notes(shared_data: Path):
    desc = open_source(f"csv:{shared_data / 'banking77/train.csv'}").describe(sample_size=5)
    assert isinstance(desc, SourceDescription)
    assert (desc.rows, desc.sentinel_rows, desc.kind, desc.encoding) == (10003, 0, "csv", "utf-8")
    assert [f.name for f in desc.fields] == ["text", "category"]
    assert all(f.fill_rate == 1.0 and f.inferred_type == "str" for f in desc.fields)
    assert desc.bytes == (shared_data / "banking77/train.csv").stat().st_size
    assert len(desc.sample_rows) == 5
    assert "header detected" in desc.notes and "delimiter ','" in desc.notes
    assert json.dumps(desc.to_dict())  # plain JSON all the way down


def test_sms_headerless_quote_none(shared_data: Path):
    src = open_source(str(shared_data / "spam/SMSSpamCollection"))
    rows = list(src.load())
    assert set(rows[0]) == {"col_0", "col_1"}
    assert rows[0]["col_0"] == "ham" and rows[0]["col_1"].startswith("Go until jurong point")
    labels = [r["col_0"] for r in rows]
    assert labels.count("ham") == 4827 and labels.count("spam") == 747
    # Quotes are literal text: a message that starts with a quote keeps it, on its own line.
    quoted = [r["col_1"] for r in rows if r["col_1"].startswith('"')]
    assert len(quoted) == 54 and not any("\n" in q for q in quoted)
    assert any("QUOTE_NONE" in n for n in src.describe(1).notes)


def test_tatoeba_three_columns_devanagari(shared_data: Path):
    rows = list(open_source(str(shared_data / "seq2seq/tatoeba_manythings_hin-eng.txt")).load())
    assert rows[0]["col_0"] == "Wow!" and rows[0]["col_1"] == "वाह!"
    assert rows[0]["col_2"].startswith("CC-BY 2.0")
    assert all(len(r) == 3 for r in rows)


def test_davidson_embedded_newlines_and_blank_header(shared_data: Path):
    src = open_source(str(shared_data / "safety/davidson_hate_offensive_labeled_data.csv"))
    rows = list(src.load())
    assert list(rows[0]) == ["col_0", "count", "hate_speech", "offensive_language", "neither",
                             "class", "tweet"]
    assert sum("\n" in r["tweet"] for r in rows) == 917
    classes = [r["class"] for r in rows]
    assert (classes.count("0"), classes.count("1"), classes.count("2")) == (1430, 19190, 4163)


def test_squad_flattened_with_parent_fields(shared_data: Path):
    path = shared_data / "qa_squad/squad_v2_dev_Normans_subset.json"
    rows = list(open_source(str(path)).load())
    assert all(r["title"] == "Normans" for r in rows)
    assert len({r["context"] for r in rows}) == 39
    assert sum(bool(r["is_impossible"]) for r in rows) == 112
    first = rows[0]
    assert first["question"] == "In what country is Normandy located?"
    ans = first["answers"][0]
    assert first["context"][ans["answer_start"]:].startswith(ans["text"])
    explicit = list(open_source(f"json:{path}#data.paragraphs.qas").load())
    assert explicit == rows
    paragraphs = list(open_source(f"json:{path}#data.paragraphs").load())
    assert len(paragraphs) == 39 and paragraphs[0]["title"] == "Normans"


def test_easy_vqa_positional_triples(shared_data: Path):
    src = open_source(str(shared_data / "vision_language/easy_vqa_test/questions.json"))
    first = next(iter(src.load()))
    assert first == {"col_0": "what is the red shape?", "col_1": "triangle", "col_2": 0}
    assert src.base_dir == shared_data.resolve() / "vision_language/easy_vqa_test"


def test_minified_alpaca_and_gz_jsonl(shared_data: Path):
    rows = list(open_source(str(shared_data / "instruct/bloom-lora_alpaca_data_1k.json")).load())
    assert set(rows[0]) == {"instruction", "input", "output"}
    assert sum(bool(r["input"]) for r in rows) == 392
    hh = next(iter(open_source(str(shared_data / "preference/hh-rlhf_harmless-base_test.jsonl.gz"))
                   .load()))
    assert hh["chosen"].startswith("\n\nHuman:")


def test_invalid_json_keeps_every_good_record(shared_data: Path):
    src = open_source(str(shared_data / "dirty/invalid_json_unquoted_value_alpaca_data.json"))
    rows = list(src.load())
    bad = rows[0]
    assert isinstance(bad, SentinelRow)
    assert bad.line_number == 2 and "SMBX is a marketplace" in bad.raw
    assert "line 5 column 19" in bad.error
    good = rows[1:]
    assert [r["instruction"] for r in good][0] == "Who can Invest on SMBX?"
    assert all(set(r) == {"instruction", "input", "output"} for r in good)


def test_truncated_json_ends_in_one_sentinel(shared_data: Path):
    src = open_source(str(shared_data / "dirty/truncated_json_hotpot_dev_distractor_v1.json"))
    rows = list(src.load())
    assert all(isinstance(r, dict) and "_id" in r for r in rows[:53])
    last = rows[-1]
    assert isinstance(last, SentinelRow) and "Unterminated string" in last.error
    good = list(open_source(str(shared_data / "rag/hotpot_dev_distractor_v1_first53.json")).load())
    assert rows[:53] == good  # identical to the clean cut of the same bytes


def test_stratified_sample_covers_the_tail(shared_data: Path):
    src = open_source(str(shared_data / "safety/davidson_hate_offensive_labeled_data.csv"))
    picked = sample_rows(src, 20)
    indices = [i for i, _ in picked]
    assert len(picked) == 20 and indices == sorted(indices)
    assert indices[0] == 0 and indices[-1] == 24782
    rows = list(src.load())
    assert all(rows[i] == row for i, row in picked)
    assert max(b - a for a, b in zip(indices, indices[1:], strict=False)) < 24783 / 10


def test_jsonl_bad_lines_blank_lines_and_bad_bytes(tmp_path: Path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"a": 1}\n\n{"a": 2,}\n{"a": "caf\xe9"}\n[1, 2]\n   \n{"a": "\xc3\xa9t\xc3\xa9"}\n'
    )
    src = open_source(f"jsonl:{path}")
    rows = list(src.load())
    assert len(rows) == 5
    assert rows[0] == {"a": 1}
    assert isinstance(rows[1], SentinelRow) and rows[1].line_number == 3
    assert isinstance(rows[2], SentinelRow) and rows[2].line_number == 4
    assert "\\xe9" in rows[2].raw  # raw kept with backslashreplace
    assert rows[3] == {"col_0": 1, "col_1": 2}
    assert rows[4] == {"a": "été"}
    desc = src.describe()
    assert (desc.rows, desc.sentinel_rows) == (5, 2)
    assert "2 blank line(s) skipped" in desc.notes


def test_json_lines_hidden_in_dot_json(shared_data: Path):
    path = shared_data / "dirty/csvkit_testjson_multiline.json"
    for locator in (str(path), f"json:{path}"):
        src = open_source(locator)
        assert list(src.load()) == [{"a": 2, "b": 3}, {"b": 2, "d": 4}]
    assert any("JSON Lines" in n for n in open_source(f"json:{path}").describe().notes)


def test_gzipped_csv_read_transparently(tmp_path: Path, shared_data: Path):
    raw = (shared_data / "banking77/test.csv").read_bytes()
    path = tmp_path / "test.csv.gz"
    path.write_bytes(gzip.compress(raw))
    assert open_source(str(path)).describe(1).rows == 3080


def test_lfs_pointer_explains_itself(shared_data: Path):
    src = open_source(str(shared_data / "dirty/lfs_pointer_hh-rlhf_helpful-base_test.jsonl.gz"))
    for action in (lambda: list(src.load()), src.describe):
        with pytest.raises(IngestError) as err:
            action()
        assert err.value.reason_code == "ingest_unsupported_format"
        assert "git lfs pull" in str(err.value) and "875191" in str(err.value)


def test_html_saved_as_csv(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n")
    with pytest.raises(IngestError, match="web page") as err:
        open_source(f"csv:{path}").describe()
    assert err.value.reason_code == "ingest_unsupported_format"


def test_path_escape_refused(tmp_path: Path):
    inside = tmp_path / "inside"
    outside = tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("a,b\n1,2\n")
    (inside / "ok.csv").write_text("a,b\n1,2\n")
    (inside / "link.csv").symlink_to(outside / "secret.csv")
    roots = [inside]
    assert list(open_source(f"csv:{inside / 'ok.csv'}", allowed_roots=roots).load()) == [
        {"a": "1", "b": "2"}
    ]
    for sneaky in (f"csv:{inside}/../outside/secret.csv", f"csv:{inside / 'link.csv'}",
                   str(inside / "link.csv")):
        with pytest.raises(IngestError, match="outside the project's allowed roots") as err:
            open_source(sneaky, allowed_roots=roots)
        assert err.value.reason_code == "ingest_validation_failed"


def test_project_allowed_roots(tmp_path: Path):
    from brewslm_core import Project

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"x": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"x": 2}\n')
    project = Project.create(tmp_path / "proj", security={"allowed_roots": [str(data)]})
    assert list(open_source(f"jsonl:{data / 'a.jsonl'}", project=project).load()) == [{"x": 1}]
    with pytest.raises(IngestError, match="allowed roots"):
        open_source(f"jsonl:{tmp_path / 'b.jsonl'}", project=project)


def test_unknown_scheme_and_missing_file(tmp_path: Path):
    with pytest.raises(IngestError, match="did you mean 'jsonl'"):
        open_source(f"jsnl:{tmp_path / 'x.jsonl'}")
    with pytest.raises(IngestError, match="does not exist") as err:
        open_source(f"csv:{tmp_path / 'nope.csv'}")
    assert err.value.reason_code == "ingest_io_error"
    assert {"jsonl", "json", "csv", "tsv"} <= set(CONNECTORS.names())
