"""The CTranslate2 model.bin reader: a hand-built file, bad files, and the shipped whisper file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from brewslm_core.models.ct2 import CT2FormatError, read_ct2


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, dtype_id: int) -> bytes:
    data = array.tobytes()
    out = _string(name) + struct.pack("<B", array.ndim)
    out += b"".join(struct.pack("<I", d) for d in array.shape)
    return out + struct.pack("<BI", dtype_id, len(data)) + data


def _model_bytes(version: int = 6) -> bytes:
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    heads = np.array(6, dtype=np.int16)
    bias = np.array([1.5, -2.0], dtype=np.float32)
    body = struct.pack("<I", version) + _string("TinySpec") + struct.pack("<I", 3)
    body += struct.pack("<I", 3)
    body += _variable("dec/embeddings/weight", weight, 4)
    body += _variable("dec/num_heads", heads, 2)
    body += _variable("dec/bias", bias, 0)
    body += struct.pack("<I", 1) + _string("dec/projection/weight") + _string("dec/embeddings/weight")
    return body


def test_reads_variables_scalars_and_aliases(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes())
    model = read_ct2(path)
    assert (model.spec, model.revision, model.version) == ("TinySpec", 3, 6)
    weight = model.get("dec/embeddings/weight")
    assert weight.dtype == np.float16 and weight.shape == (2, 3)
    assert weight.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert int(model.get("dec/num_heads")) == 6
    assert model.get("dec/bias").tolist() == [1.5, -2.0]
    assert model.get("dec/projection/weight") is weight  # an alias, not a copy
    with pytest.raises(KeyError, match="dec/nope"):
        model.get("dec/nope")


def test_unsupported_version_is_refused(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes(version=2))
    with pytest.raises(CT2FormatError, match="version 2 is not supported"):
        read_ct2(path)


def test_truncated_file_is_refused(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes()[:-40])
    with pytest.raises(CT2FormatError, match="ends early"):
        read_ct2(path)


def test_reads_the_shipped_whisper_model():
    from brewslm_core.models.whisper import ct2_dir

    model = read_ct2(ct2_dir() / "model.bin")
    assert model.spec == "WhisperSpec" and model.version == 6
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model.get("decoder/embeddings/weight").shape == (51864, 384)
    assert model.get("encoder/conv1/weight").shape == (384, 80, 3)
    assert int(model.get("encoder/num_heads")) == 6
