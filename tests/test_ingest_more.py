"""conll:, dir:, parquet:, hf:, kaggle: connectors and the CLI."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from brewslm_core.contracts import SentinelRow
from brewslm_core.ingest import IngestError, open_source, sample_rows


def test_wnut_conll(shared_data: Path):
    path = shared_data / "ner/wnut17_emerging.dev.conll"
    for locator in (f"conll:{path}", str(path)):
        src = open_source(locator)
        rows = list(src.load())
        assert src.kind == "conll" and len(rows) == 1009
        assert all(isinstance(r, dict) and len(r["tokens"]) == len(r["tags"]) for r in rows)
        assert sum(len(r["tokens"]) for r in rows) == 15733
        assert any(t.startswith("B-creative-work") for r in rows for t in r["tags"])


def test_conll_docstart_and_broken_sentence(tmp_path: Path):
    path = tmp_path / "tiny.conll"
    path.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nbroken\nline O\n\nPeter B-PER\n")
    src = open_source(f"conll:{path}")
    rows = list(src.load())
    assert rows[0] == {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}
    assert isinstance(rows[1], SentinelRow) and rows[1].line_number == 6
    assert rows[2] == {"tokens": ["Peter"], "tags": ["B-PER"]}
    assert "1 -DOCSTART- line(s) skipped" in src.describe().notes


def test_fsdd_dir_filename_labels(shared_data: Path):
    src = open_source(f"dir:{shared_data / 'audio_fsdd/recordings'}")
    rows = list(src.load())
    assert len(rows) == 300
    first = rows[0]
    assert first["media"] == "audio" and Path(first["path"]).is_absolute()
    assert Path(first["path"]).name == "0_george_0.wav"
    assert (first["label"], first["speaker"]) == ("0", "george")
    assert sorted({r["label"] for r in rows}) == [str(d) for d in range(10)]
    assert len({r["speaker"] for r in rows}) == 6
    # The parent folder is found too when the locator is a bare folder.
    assert open_source(str(shared_data / "audio_fsdd")).describe(1).rows == 300


def test_easy_vqa_dir_joins_sidecar(shared_data: Path):
    src = open_source(f"dir:{shared_data / 'vision_language/easy_vqa_test'}")
    desc = src.describe(3)
    assert (desc.rows, desc.sentinel_rows) == (9673, 0)
    first = next(iter(src.load()))
    assert Path(first["path"]).name == "0.png" and first["media"] == "image"
    assert first["col_0"] == "what is the red shape?"


def _copy_wavs(shared_data: Path, dest: Path, names: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(shared_data / "audio_fsdd/recordings" / name, dest / name)


def test_dir_class_folders_and_sidecar_missing_file(tmp_path: Path, shared_data: Path):
    root = tmp_path / "clips"
    _copy_wavs(shared_data, root / "yes", ["1_theo_0.wav"])
    _copy_wavs(shared_data, root / "no", ["0_theo_0.wav", "0_lucas_1.wav"])
    rows = list(open_source(f"dir:{root}").load())
    assert [(Path(r["path"]).name, r["label"]) for r in rows] == [
        ("0_lucas_1.wav", "no"), ("0_theo_0.wav", "no"), ("1_theo_0.wav", "yes")
    ]
    (root / "meta.jsonl").write_text(
        '{"file": "yes/1_theo_0.wav", "text": "one"}\n'
        '{"file": "gone.wav", "text": "lost"}\n'
        '{"file": "0_theo_0.wav", "text": "zero"}\n'
    )
    src = open_source(f"dir:{root}")
    rows = list(src.load())
    assert rows[0]["text"] == "one" and rows[0]["label"] == "yes"
    assert isinstance(rows[1], SentinelRow) and "gone.wav" in rows[1].error
    assert rows[2]["text"] == "zero"
    assert Path(rows[3]["path"]).name == "0_lucas_1.wav" and "text" not in rows[3]
    notes = src.describe().notes
    assert any("meta.jsonl" in n for n in notes)


def test_dir_symlink_escape_is_a_sentinel(tmp_path: Path, shared_data: Path):
    root = tmp_path / "root"
    _copy_wavs(shared_data, root, ["2_jackson_0.wav"])
    _copy_wavs(shared_data, tmp_path / "elsewhere", ["3_jackson_0.wav"])
    (root / "3_jackson_0.wav").symlink_to(tmp_path / "elsewhere/3_jackson_0.wav")
    rows = list(open_source(f"dir:{root}", allowed_roots=[root]).load())
    assert rows[0]["label"] == "2"
    assert isinstance(rows[1], SentinelRow) and "allowed roots" in rows[1].error


def test_parquet_roundtrip(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    table = pa.table({"text": [f"row {i}" for i in range(10_000)], "label": [i % 3 for i in
                                                                             range(10_000)]})
    pq.write_table(table, path, row_group_size=1000)
    for locator in (f"parquet:{path}", str(path)):
        src = open_source(locator)
        assert src.kind == "parquet"
        desc = src.describe(4)
        assert desc.rows == 10_000 and [f.inferred_type for f in desc.fields] == ["str", "int"]
    fresh = sample_rows(open_source(str(path)), 4)  # one pass, grid-nearest indices
    assert fresh[0] == (0, {"text": "row 0", "label": 0})
    assert fresh[-1] == (9999, {"text": "row 9999", "label": 0})
    assert all(fresh[i][1] == {"text": f"row {fresh[i][0]}", "label": fresh[i][0] % 3}
               for i in range(4))
    counted = open_source(str(path))
    counted.describe(1)  # the count is now known: indices are exactly evenly spaced
    assert [i for i, _ in sample_rows(counted, 4)] == [0, 3333, 6666, 9999]


def test_hf_save_to_disk_folder(tmp_path: Path):
    import datasets

    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}),
        "test": datasets.Dataset.from_dict({"text": ["d"], "label": [1]}),
    })
    folder = tmp_path / "saved"
    data.save_to_disk(str(folder))
    rows = list(open_source(f"hf:{folder}:train").load())
    assert rows == [{"text": "a", "label": 0}, {"text": "b", "label": 1},
                    {"text": "c", "label": 0}]
    src = open_source(f"hf:{folder}:test")
    desc = src.describe()
    assert (desc.kind, desc.rows, src.base_dir) == ("hf", 1, folder.resolve())
    assert open_source(str(folder)).kind == "hf"  # a bare save_to_disk folder is recognised
    with pytest.raises(IngestError, match="no split 'validation'"):
        list(open_source(f"hf:{folder}:validation").load())
    single = tmp_path / "single"
    data["train"].save_to_disk(str(single))
    assert len(list(open_source(f"hf:{single}:train").load())) == 3


def test_hf_offline_uncached_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_home/datasets"))
    src = open_source("hf:brewslm-test/no-such-dataset:train")
    with pytest.raises(IngestError, match="save_to_disk") as err:
        src.describe()
    assert err.value.reason_code == "ingest_io_error"
    assert "HF_HUB_OFFLINE=0" in str(err.value)


def test_kaggle_local_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             shared_data: Path):
    kaggle_root = tmp_path / "kaggle"
    comp = kaggle_root / "banking"
    comp.mkdir(parents=True)
    with zipfile.ZipFile(comp / "banking.zip", "w") as zf:
        zf.write(shared_data / "banking77/test.csv", "test.csv")
    monkeypatch.setenv("BREWSLM_KAGGLE_DIR", str(kaggle_root))
    src = open_source("kaggle:banking:test.csv")
    desc = src.describe(2)
    assert (desc.kind, desc.rows, desc.locator) == ("kaggle", 3080, "kaggle:banking:test.csv")
    assert any("read as csv" in n for n in desc.notes)
    assert open_source("kaggle:banking:test").describe(1).rows == 3080  # stem works too


def test_kaggle_missing_gives_steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, project):
    monkeypatch.setenv("BREWSLM_KAGGLE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no kaggle CLI on PATH
    with pytest.raises(IngestError, match="kaggle competitions download -c titanic") as err:
        open_source("kaggle:titanic:train.csv", project=project)
    assert err.value.reason_code == "ingest_io_error"
    # The project's own download folder is searched as well.
    folder = project.raw_dir / "kaggle" / "titanic"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("PassengerId,Survived\n1,0\n2,1\n")
    assert list(open_source("kaggle:titanic:train.csv", project=project).load())[1] == {
        "PassengerId": "2", "Survived": "1"
    }


def test_cli_describe_and_sample(shared_data: Path):
    from typer.testing import CliRunner

    from brewslm_core.cli import app

    runner = CliRunner()
    path = shared_data / "spam/SMSSpamCollection"
    result = runner.invoke(app, ["ingest", "describe", str(path), "--sample", "2"])
    assert result.exit_code == 0, result.output
    desc = json.loads(result.output)
    assert (desc["rows"], desc["kind"]) == (5574, "tsv")
    result = runner.invoke(app, ["ingest", "sample", str(path), "-n", "3"])
    lines = [json.loads(line) for line in result.output.splitlines()]
    indices = [line["index"] for line in lines]
    assert len(indices) == 3 and indices[0] == 0 and indices[-1] == 5573
    assert abs(indices[1] - 2786) <= 5574 // 20
    bad = runner.invoke(app, ["ingest", "describe",
                              str(shared_data / "dirty/lfs_pointer_hh-rlhf_helpful-base_test.jsonl.gz")])
    assert bad.exit_code == 2 and "ingest_unsupported_format" in bad.output


def test_hf_image_column_stays_undecoded(tmp_path: Path, shared_data: Path):
    import datasets

    png = shared_data / "vision_language/easy_vqa_test/images/0.png"
    data = datasets.Dataset.from_dict({"image": [str(png)], "q": ["what shape?"]})
    data.cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "img"))
    row = next(iter(open_source(f"hf:{tmp_path / 'img'}:train").load()))
    assert row["q"] == "what shape?"
    assert set(row["image"]) == {"bytes", "path"}  # stored bytes/path, not a decoded image
    assert row["image"]["bytes"] == png.read_bytes() or row["image"]["path"] == str(png)
