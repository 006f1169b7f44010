"""The one trace.jsonl reader: read_trace and the loss chart's live tail parse lines the same way."""

from __future__ import annotations

import json
from pathlib import Path

from brewslm_core.train.trace import TraceWriter, parse_lines, read_trace, split_of


def test_read_trace_skips_corrupt_and_half_written_lines(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    writer = TraceWriter(path)
    writer.write({"step": 1, "loss": 2.0, "split": "train"})
    writer.write({"step": 1, "eval_loss": 1.5, "split": "eval"})
    writer.close()
    with open(path, "ab") as fh:
        fh.write(b"not json\n")
        fh.write(json.dumps({"step": 2, "loss": 1.0}).encode()[:-3])  # a writer mid-line
    assert [line["step"] for line in read_trace(path, "train")] == [1]
    assert [line["eval_loss"] for line in read_trace(path, "eval")] == [1.5]
    assert len(read_trace(path)) == 2
    assert split_of({"loss": 1.0}) == "train" and split_of({"split": "eval"}) == "eval"


def test_the_loss_chart_tail_uses_the_same_parser(tmp_path: Path) -> None:
    from brewslm_widgets.loss_chart import _TraceTail

    path = tmp_path / "trace.jsonl"
    lines = [{"step": 1, "loss": 2.0, "lr": 0.1, "split": "train"},
             {"step": 1, "eval_loss": 1.5, "loss": 9.9, "split": "eval"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + "[1, 2]\n{broken\n")
    tail = _TraceTail(path)
    assert tail.read()
    # the eval line carries a loss too: it is not a train point
    assert tail.train == {"step": [1], "loss": [2.0], "lr": [0.1]}
    assert tail.eval == {"step": [1], "eval_loss": [1.5]}
    assert parse_lines(path.read_bytes()) == lines
