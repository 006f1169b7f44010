"""Every file in shared/data/dirty: exact rows, sentinels and decoded text, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from brewslm_core.contracts import SentinelRow
from brewslm_core.ingest import IngestError, open_source

DIRTY_ROWS = {
    # file: (kind, rows, sentinel rows)
    "csvkit_bad_skip_lines.csv": ("csv", 3, 0),
    "csvkit_blanks.csv": ("csv", 1, 0),
    "csvkit_mac_newlines.csv": ("csv", 2, 0),
    "csvkit_null_byte.csv": ("csv", 1, 0),
    "csvkit_test_header_newline.csv": ("csv", 1, 0),
    "csvkit_test_latin1.csv": ("csv", 2, 0),
    "csvkit_test_utf16_little.csv": ("csv", 2, 0),
    "csvkit_test_utf8_bom.csv": ("csv", 2, 0),
    "csvkit_testjson_multiline.json": ("jsonl", 2, 0),
    "frictionless_encoding-issue-274.csv": ("csv", 507, 0),
    "frictionless_escaping.csv": ("csv", 3, 0),
    "frictionless_invalid.csv": ("csv", 3, 0),
    "frictionless_issue-1109.csv": ("csv", 3, 0),
    "frictionless_issue-1138.csv": ("csv", 7, 0),
    "frictionless_issue-305.csv": ("csv", 338, 0),
    "frictionless_issue-647.csv.txt": ("csv", 882, 0),
    "frictionless_issue-811.csv": ("csv", 7904, 0),
    "frictionless_issue-825.csv": ("csv", 2, 0),
    "frictionless_matrix-with-comment.csv": ("csv", 4, 0),
    "frictionless_table-infer-iso-8859-7.csv": ("csv", 4, 0),
    "invalid_json_unquoted_value_alpaca_data.json": ("json", 8, 1),
    "truncated_json_hotpot_dev_distractor_v1.json": ("json", 54, 1),
}
NOT_DATA = {"README.md", "LICENSE_csvkit_COPYING.txt", "LICENSE_frictionless-py_MIT.md",
            "lfs_pointer_hh-rlhf_helpful-base_test.jsonl.gz"}


def test_every_dirty_file_is_covered(shared_data: Path):
    present = {p.name for p in (shared_data / "dirty").iterdir()}
    assert present == set(DIRTY_ROWS) | NOT_DATA


@pytest.mark.parametrize("name", sorted(DIRTY_ROWS))
def test_dirty_rows(shared_data: Path, name: str):
    kind, rows, sentinels = DIRTY_ROWS[name]
    src = open_source(str(shared_data / "dirty" / name))
    desc = src.describe(sample_size=5)
    assert (src.kind, desc.rows, desc.sentinel_rows) == (kind, rows, sentinels)
    assert len(list(src.load())) == rows


def rows_of(shared_data: Path, name: str) -> list:
    return list(open_source(str(shared_data / "dirty" / name)).load())


def test_encodings_decode_correctly(shared_data: Path):
    assert rows_of(shared_data, "csvkit_test_latin1.csv")[1]["c"] == "©"
    greek = rows_of(shared_data, "frictionless_table-infer-iso-8859-7.csv")
    assert [r["name"] for r in greek] == ["Λεωνιδας", "Αλεξανδρος", "Μυρων", "Ευστοργιος"]
    bom = rows_of(shared_data, "csvkit_test_utf8_bom.csv")
    assert list(bom[0]) == ["foo", "bar", "baz"]
    utf16 = rows_of(shared_data, "csvkit_test_utf16_little.csv")
    assert utf16 == [{"a": "1", "b": "2", "c": "3"}, {"a": "4", "b": "5", "c": "ʤ"}]
    french = open_source(str(shared_data / "dirty/frictionless_issue-647.csv.txt"))
    first = next(iter(french.load()))
    assert "accessibilité" in first and first["ad_station"].startswith("Allée")
    assert first["code_insee"] == "2B033"  # stays a string
    assert french.describe(1).encoding == "cp1252"


def test_utf8_detected_over_whole_file_not_head(shared_data: Path):
    src = open_source(str(shared_data / "dirty/frictionless_encoding-issue-274.csv"))
    text = " ".join(str(v) for row in src.load() for v in row.values())
    assert "Kāwanatanga" in text
    assert src.describe(1).encoding == "utf-8"
    acled = " ".join(
        str(v) for row in open_source(str(shared_data / "dirty/frictionless_issue-305.csv")).load()
        for v in row.values()
    )
    assert "\u0441hemistry" in acled  # the Cyrillic homoglyph survives


def test_istat_crlf_with_newlines_in_header(shared_data: Path):
    src = open_source(str(shared_data / "dirty/frictionless_issue-811.csv"))
    desc = src.describe(2)
    names = [f.name for f in desc.fields]
    assert len(names) == 26 and names[0] == "Codice Regione"
    assert not any("\n" in n for n in names)
    assert "delimiter ';'" in desc.notes
    values = {v for row in src.load() for v in row.values()}
    assert any("à" in v for v in values)


def test_csv_layout_quirks(shared_data: Path):
    assert rows_of(shared_data, "csvkit_bad_skip_lines.csv") == [
        {"column_a": "1", "column_b": "27", "column_c": "", "_extra": ["I'm too long!"]},
        {"column_a": "", "column_b": "I'm too short!"},
        {"column_a": "0", "column_b": "mixed types.... uh oh", "column_c": "17"},
    ]
    assert rows_of(shared_data, "csvkit_mac_newlines.csv") == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "Once upon\ra time", "b": "5", "c": "6"},
    ]
    assert rows_of(shared_data, "csvkit_null_byte.csv") == [{"a": "\x00", "b": "2", "c": "3"}]
    assert rows_of(shared_data, "csvkit_test_header_newline.csv") == [
        {"start end": "d", "b": "e", "c": "f"}
    ]
    assert rows_of(shared_data, "frictionless_invalid.csv") == [
        {"id": "1", "name": "english"},
        {"id": "1", "name": "english"},
        {"id": "2", "name": "german", "col_2": "1", "name_2": "2", "_extra": ["3"]},
    ]
    assert rows_of(shared_data, "frictionless_escaping.csv") == [
        {"ID": "1", "Test": "Test line 1"},
        {"ID": "2", "Test": 'Test " line 2'},
        {"ID": "3", "Test": 'Test " line 3'},
    ]
    assert rows_of(shared_data, "frictionless_issue-1109.csv")[1] == {
        "int": "", "number": "4.3", "string": "string"
    }
    german = rows_of(shared_data, "frictionless_issue-1138.csv")
    assert german[0] == {"Zeit [MEZ]": "09.07.2013 12:00:00", "Wasserstand": "146",
                         "Status": "nicht qualitätsgesichert", "col_3": ""}
    assert rows_of(shared_data, "frictionless_issue-825.csv")[0] == {
        "Musei": "Galleria d'Arte moderna e mostre temporanee", "2011": "23.824", "2010": "17.518"
    }
    matrix = open_source(str(shared_data / "dirty/frictionless_matrix-with-comment.csv"))
    assert next(iter(matrix.load())) == {"f1": "11", "f2": "12", "f3": "13", "f4": "14"}
    assert any("# comment" in n for n in matrix.describe(1).notes)


def test_blank_spellings_do_not_count_as_filled(shared_data: Path):
    desc = open_source(str(shared_data / "dirty/csvkit_blanks.csv")).describe()
    assert [(f.name, f.fill_rate) for f in desc.fields] == [
        (name, 0.0) for name in "abcdef"
    ]


def test_describe_notes_and_ragged_counts(shared_data: Path):
    desc = open_source(str(shared_data / "dirty/frictionless_invalid.csv")).describe()
    assert "1 blank line(s) skipped" in desc.notes
    assert "2 short row(s): missing cells are absent" in desc.notes
    assert "1 long row(s): extra cells kept under _extra" in desc.notes


def test_lfs_pointer_under_every_locator(shared_data: Path):
    path = shared_data / "dirty/lfs_pointer_hh-rlhf_helpful-base_test.jsonl.gz"
    for locator in (str(path), f"jsonl:{path}", f"json:{path}", f"csv:{path}"):
        with pytest.raises(IngestError, match="git-lfs pointer") as err:
            list(open_source(locator).load())
        assert err.value.reason_code == "ingest_unsupported_format"


def test_undecodable_csv_line_becomes_sentinel(tmp_path: Path):
    path = tmp_path / "mostly_utf8.csv"
    path.write_bytes(
        "id,text\n1,café\n2,naïve\n".encode() + b"3,bad \xff\xfe bytes\n" + "4,déjà\n".encode()
    )
    rows = list(open_source(str(path)).load())
    assert rows[0] == {"id": "1", "text": "café"} and rows[3] == {"id": "4", "text": "déjà"}
    bad = rows[2]
    assert isinstance(bad, SentinelRow) and bad.line_number == 4
    assert "\\xff\\xfe" in bad.raw


def test_headerless_numeric_and_single_column(tmp_path: Path):
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("1,2,3\n4,5,6\n")
    assert list(open_source(str(numbers)).load()) == [
        {"col_0": "1", "col_1": "2", "col_2": "3"}, {"col_0": "4", "col_1": "5", "col_2": "6"}
    ]
    pipes = tmp_path / "pipes.txt"
    pipes.write_text("name|score\nann|3\nbob|4\n")
    assert list(open_source(str(pipes)).load())[1] == {"name": "bob", "score": "4"}
