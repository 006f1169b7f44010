"""Knowledge distillation: capture a teacher's top-k next-token logprobs once, train on them.

``teacher.capture_teacher`` encodes rows exactly as the SFT handler does (so the tokens line up), runs
the teacher once in eval mode and keeps, at every position that carries a loss, the teacher's
top-k token ids and log-probabilities (log_softmax over the full vocabulary). A capture lives
under ``project.teacher_dir(<id>)``:

    teacher.safetensors   ids [P, k] int32, logprobs [P, k] float32, offsets [N + 1] int64
    index.json            the N example keys (hash of the input ids); example i owns rows
                          offsets[i]:offsets[i + 1]
    capture.json          teacher, tokenizer fingerprint, top_k, max_length, counts

Keys are hashes of each example's input ids, so a training run may use the rows in any order
or any subset of them. ``TrainConfig(distill_from=<id>)`` makes the SFT handler add the KD term.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.base import Contract, contract
from .packing import IGNORE

if TYPE_CHECKING:
    import numpy as np

    from ..project import Project

CAPTURE_FILE = "capture.json"
INDEX_FILE = "index.json"
TENSORS_FILE = "teacher.safetensors"
DEFAULT_MAX_LENGTH = 128  # TrainConfig's default, for projects without a manifest


class DistillError(ValueError):
    """A teacher or capture that cannot be used; the message says what to do instead."""


@contract
class TeacherCapture(Contract):
    capture_id: str
    teacher: str  # what was asked ("auto", a run id or a folder)
    teacher_path: str  # the folder the weights came from
    path: str  # the capture's folder
    tokenizer_fingerprint: str
    top_k: int
    max_length: int
    rows: int  # rows given
    examples: int  # distinct encoded examples stored
    positions: int  # loss positions stored (top-k each)
    skipped: int  # rows with no loss position (nothing to learn from)
    seconds: float


# ---- keys and fingerprints --------------------------------------------------------------
def example_key(input_ids: Sequence[int]) -> str:
    """Stable key of an encoded example: its input ids, not its place in a file."""
    import numpy as np

    return hashlib.sha256(np.asarray(input_ids, dtype=np.int64).tobytes()).hexdigest()[:32]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the sorted vocabulary: equal fingerprints mean token ids mean the same."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


# ---- reading a capture back ---------------------------------------------------------------
def list_captures(project: Project) -> list[str]:
    root = project.teacher_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CAPTURE_FILE).is_file())


@dataclass
class TeacherTable:
    """A loaded capture: example key -> the teacher's (ids [n, k], logprobs [n, k])."""

    meta: dict[str, Any]
    ids: np.ndarray
    logprobs: np.ndarray
    offsets: np.ndarray
    rows_of: dict[str, int]

    def lookup(self, input_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        i = self.rows_of.get(example_key(input_ids))
        if i is None:
            return None
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[a:b], self.logprobs[a:b]


def load_capture(project: Project, capture_id: str) -> TeacherTable:
    from safetensors.numpy import load_file

    plain = bool(capture_id) and Path(capture_id).name == capture_id and not capture_id.startswith(".")
    folder = project.teacher_dir(capture_id) if plain else None
    if folder is None or not (folder / CAPTURE_FILE).is_file():
        have = list_captures(project)
        listed = ", ".join(have) if have else "none yet"
        raise DistillError(
            f"no teacher capture {capture_id!r} in this project (captures: {listed}); "
            "make one with `brewslm train capture-teacher PROJECT`"
        )
    meta = json.loads((folder / CAPTURE_FILE).read_text("utf-8"))
    arrays = load_file(str(folder / TENSORS_FILE))
    keys = json.loads((folder / INDEX_FILE).read_text("utf-8"))
    return TeacherTable(
        meta=meta,
        ids=arrays["ids"],
        logprobs=arrays["logprobs"],
        offsets=arrays["offsets"],
        rows_of={k: i for i, k in enumerate(keys)},
    )


def loss_positions(target: Sequence[int]) -> int:
    """How many positions of an encoded example carry a loss (and so a teacher row)."""
    return sum(t != IGNORE for t in target)
