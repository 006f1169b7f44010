"""Readers for files as other projects ship them: plain text, fastText, CoNLL by content, JSON
objects that are many records or one, and bytes that are not what the name says."""

from __future__ import annotations

from pathlib import Path

import pytest

from brewslm_core.contracts import SentinelRow
from brewslm_core.ingest import IngestError, open_source


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_prose_with_commas_is_one_document_per_line_not_csv(tmp_path):
    path = _write(tmp_path, "notes.txt", "one line, with a comma, and another\nsecond line; "
                  "semicolon here\ncaf\xe9 cr\xe8me, br\xfbl\xe9e\n".encode("cp1252"))
    src = open_source(path)
    assert src.kind == "text"
    assert list(src.load()) == [{"text": "one line, with a comma, and another"},
                                {"text": "second line; semicolon here"},
                                {"text": "café crème, brûlée"}]


def test_a_real_csv_named_txt_stays_csv(tmp_path):
    path = _write(tmp_path, "table.txt", b"name,score\nann,3\nbob,4\n")
    assert list(open_source(path).load())[1] == {"name": "bob", "score": "4"}


def test_fasttext_line_without_a_label_is_a_sentinel(tmp_path):
    path = _write(tmp_path, "ft.txt", b"__label__a first text\n__label__b __label__c second\n"
                  b"__label__a third\n__label__b fourth\n__label__a fifth\n__label__c sixth\n"
                  b"__label__a seventh\n__label__b eighth\n__label__a ninth\n__label__b tenth\n"
                  b"no label here at all\n")
    rows = list(open_source(path).load())
    assert rows[1] == {"label": "b", "labels": ["b", "c"], "text": "second"}
    assert isinstance(rows[-1], SentinelRow) and rows[-1].line_number == 11


def test_conll_hash_token_lines_are_tokens_not_comments(tmp_path):
    path = _write(tmp_path, "tweets.conll",
                  b"#\tO\nlove\tO\nParis\tB-location\n\n@user\tO\nin\tO\nRome\tB-location\n")
    rows = list(open_source(path).load())
    assert rows[0] == {"tokens": ["#", "love", "Paris"], "tags": ["O", "O", "B-location"]}


def test_keyed_records_keep_their_key_and_one_conversation_is_one_row(tmp_path):
    keyed = _write(tmp_path, "utts.json",
                   b'{"a1": {"wav": "a1.wav", "words": "hi"}, "a2": {"wav": "a2.wav", "words": "yo"}}')
    assert list(open_source(keyed).load()) == [{"id": "a1", "wav": "a1.wav", "words": "hi"},
                                               {"id": "a2", "wav": "a2.wav", "words": "yo"}]
    one = _write(tmp_path, "chat.json", b'{"messages": [{"role": "user", "content": "hi"}, '
                 b'{"role": "assistant", "content": "hello"}], "source": "x"}')
    assert len(list(open_source(one).load())) == 1


@pytest.mark.parametrize(("head", "what"), [
    (b"\x7fELF\x02\x01\x01" + bytes(200), "ELF executable"),
    (b"MZ\x90\x00" + bytes(200), "Windows executable"),
    (b"\x28\xb5\x2f\xfd" + bytes(200), "zstd"),
    (b"\xfd7zXZ\x00" + bytes(200), "xz"),
    (bytes(257) + b"ustar" + bytes(300), "tar archive"),
])
def test_binary_under_a_data_name_is_refused_with_what_it_is(tmp_path, head, what):
    for locator in (_write(tmp_path, "data.jsonl", head), f"jsonl:{tmp_path / 'data.jsonl'}"):
        with pytest.raises(IngestError) as err:
            list(open_source(locator).load())
        assert what in str(err.value)
