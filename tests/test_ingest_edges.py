"""Small edge cases built in tmp_path: empty files, BOMs, wide encodings, bare values."""

from __future__ import annotations

from pathlib import Path

from brewslm_core.contracts import SentinelRow
from brewslm_core.ingest import open_source


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_empty_files_take_their_kind_from_the_name(tmp_path: Path):
    for name, kind in (("e.csv", "csv"), ("e.jsonl", "jsonl"), ("e.json", "json")):
        src = open_source(_write(tmp_path, name, b""))
        assert src.kind == kind and list(src.load()) == []
        assert src.describe().rows == 0
    header_only = open_source(_write(tmp_path, "h.csv", b"a,b\n"))
    assert list(header_only.load()) == [] and "header detected" in header_only.describe().notes


def test_json_array_with_bad_bytes_keeps_neighbours(tmp_path: Path):
    path = _write(tmp_path, "b.json", b'\xef\xbb\xbf[{"a": 1}, {"a": "caf\xe9"}, {"a": 3}]')
    rows = list(open_source(path).load())
    assert rows[0] == {"a": 1} and rows[2] == {"a": 3}
    assert isinstance(rows[1], SentinelRow) and rows[1].raw == '{"a": "caf\\xe9"}'


def test_utf16_json_and_bare_values(tmp_path: Path):
    wide = _write(tmp_path, "w.json", '[{"a": "é"}, {"a": "ü"}]'.encode("utf-16"))
    src = open_source(wide)
    assert src.kind == "json" and list(src.load()) == [{"a": "é"}, {"a": "ü"}]
    assert list(open_source(_write(tmp_path, "n.json", b"42")).load()) == [{"value": 42}]
    assert list(open_source(_write(tmp_path, "o.json", b'{"a": 1}')).load()) == [{"a": 1}]


def test_object_with_several_lists_and_record_path(tmp_path: Path):
    path = _write(tmp_path, "multi.json",
                  b'{"meta": {"v": 1}, "labels": ["x", "y"], "rows": [{"t": "a"}, {"t": "b"}]}')
    src = open_source(path)
    assert list(src.load()) == [{"t": "a"}, {"t": "b"}]
    assert any("several lists" in n for n in src.describe().notes)
    assert list(open_source(f"json:{path}#labels").load()) == [{"value": "x"}, {"value": "y"}]


def test_group_flattening_stops_at_data_records(tmp_path: Path):
    # kto-like records (a list of messages + one scalar) at the top level are rows, not groups.
    path = _write(tmp_path, "kto.json",
                  b'[{"messages": [{"role": "user", "content": "hi"}], "label": true}]')
    assert list(open_source(path).load())[0]["label"] is True
    nested = _write(tmp_path, "groups.json",
                    b'{"data": [{"title": "T", "items": [{"q": "1", "id": 1}, {"q": "2", "id": 2}]}]}')
    assert list(open_source(nested).load()) == [{"title": "T", "q": "1", "id": 1},
                                                 {"title": "T", "q": "2", "id": 2}]


def test_single_column_text_file_has_no_header(tmp_path: Path):
    path = _write(tmp_path, "lines.txt", b"just one line of text\nanother line\n")
    assert list(open_source(path).load()) == [{"col_0": "just one line of text"},
                                              {"col_0": "another line"}]


def test_crlf_tsv_with_blank_lines_and_long_cells(tmp_path: Path):
    long_text = "x" * 300_000  # longer than the csv module's default field limit
    data = f"id\ttext\r\n1\t{long_text}\r\n\r\n2\tshort\r\n".encode()
    src = open_source(f"tsv:{_write(tmp_path, 'a.tsv', data)}")
    rows = list(src.load())
    assert rows == [{"id": "1", "text": long_text}, {"id": "2", "text": "short"}]
    assert "1 blank line(s) skipped" in src.describe().notes


def test_sample_notices_a_changed_file(tmp_path: Path):
    import os

    from brewslm_core.ingest import sample_rows

    path = tmp_path / "grow.jsonl"
    path.write_text("".join(f'{{"i": {i}}}\n' for i in range(10)))
    src = open_source(str(path))
    assert sample_rows(src, 2)[-1] == (9, {"i": 9})
    path.write_text("".join(f'{{"i": {i}}}\n' for i in range(30)))
    os.utime(path, ns=(1, 10**18))  # a clearly different mtime, whatever the clock
    assert sample_rows(src, 2)[-1] == (29, {"i": 29})


def test_hash_in_a_file_name_is_not_a_record_path(tmp_path: Path):
    path = _write(tmp_path, "batch#1.json", b'[{"a": 1}]')
    assert list(open_source(f"json:{path}").load()) == [{"a": 1}]


def test_one_column_files(tmp_path: Path, shared_data: Path):
    answers = open_source(str(shared_data / "vision_language/easy_vqa_test/answers.txt"))
    rows = list(answers.load())
    assert len(rows) == 13 and rows[0] == {"col_0": "circle"} and rows[-1] == {"col_0": "no"}
    named = _write(tmp_path, "t.csv", b"text\nthe first sentence here\nand a second one here\n")
    assert list(open_source(named).load())[0] == {"text": "the first sentence here"}
    scores = _write(tmp_path, "s.csv", b"score\n1.5\n2\n")
    assert list(open_source(scores).load()) == [{"score": "1.5"}, {"score": "2"}]


def test_binary_files_are_refused_with_what_they_are(tmp_path: Path, shared_data: Path):
    import pytest

    from brewslm_core.ingest import IngestError

    png = shared_data / "vision_language/easy_vqa_test/images/0.png"
    noise = _write(tmp_path, "noise.csv", bytes(range(256)) * 20)
    for locator, what in ((str(png), "PNG image"), (f"csv:{png}", "PNG image"),
                          (noise, "binary data"), (f"jsonl:{noise}", "binary data")):
        with pytest.raises(IngestError, match=what) as err:
            open_source(locator).describe()
        assert err.value.reason_code == "ingest_unsupported_format"


def test_utf16_without_bom_is_text(tmp_path: Path):
    path = _write(tmp_path, "u16.csv", "name,city\nZoë,Zürich\nJosé,Málaga\n".encode("utf-16-le"))
    rows = list(open_source(path).load())
    assert rows == [{"name": "Zoë", "city": "Zürich"}, {"name": "José", "city": "Málaga"}]


def test_spread_sampler_bounded_and_spread():
    from brewslm_core.ingest.describe import SpreadSampler, stratified_indices

    sampler = SpreadSampler(20)
    most = 0
    for i in range(200_000):
        sampler.add(i, {"i": i})
        most = max(most, len(sampler.kept))
    assert most <= sampler.capacity + 1  # memory stays bounded whatever the length
    picked = [i for i, _ in sampler.pick(20)]
    exact = stratified_indices(200_000, 20)
    assert picked[0] == 0 and picked[-1] == 199_999 and len(picked) == 20
    assert all(abs(a - b) <= sampler.step for a, b in zip(picked, exact, strict=True))


def test_cp1252_json_lines_and_arrays_decode(tmp_path: Path):
    lines = '{"t": "café crème"}\n{"t": "naïve"}\n{"t": "plain"}\n'.encode("cp1252")
    src = open_source(_write(tmp_path, "w.jsonl", lines))
    assert [r["t"] for r in src.load()] == ["café crème", "naïve", "plain"]
    assert src.describe().encoding == "cp1252"
    array = '[{"t": "déjà vu"}, {"t": "Straße"}]'.encode("cp1252")
    rows = list(open_source(_write(tmp_path, "w.json", array)).load())
    assert rows == [{"t": "déjà vu"}, {"t": "Straße"}]
