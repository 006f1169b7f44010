"""The one protocol every task handler speaks, and the row-packing helper they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..packing import IGNORE, pack_rows  # noqa: F401  (IGNORE re-exported for the handlers)

if TYPE_CHECKING:
    import torch

    from ...project import Project
    from ..config import TrainConfig



@dataclass(slots=True)
class Example:
    """One encoded row: token ids plus its target.

    ``target`` is a class index for classification, or one next-token id per input position
    (``IGNORE`` where no loss is taken) for language modelling. Targets are shifted at encode
    time so that packing never lets an example predict its neighbour's first token.
    """

    input_ids: list[int]
    target: int | list[int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.input_ids)


@runtime_checkable
class TaskHandler(Protocol):
    """What the engine needs from a task. One instance per run; it owns tokenizer and labels.

    Two hooks every handler has (``HandlerHooks`` gives the do-nothing defaults): ``bind(project,
    run_dir)`` before ``setup`` (for handlers that read project files: the RAG corpus, a teacher
    capture), and ``step_metrics() -> dict`` after each optimizer step (extra trace fields, e.g.
    the distillation part of the loss; the handler resets its tallies there).
    """

    task_profile: str

    def bind(self, project: Project, run_dir: Path) -> None:
        """Called before ``setup`` with the project and the run's folder."""

    def step_metrics(self) -> dict[str, Any]:
        """Extra trace fields for the optimizer step that just ran ({} when none)."""

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        """Load the tokenizer and learn what the rows need (e.g. the label set)."""

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        """The trainable model (LoRA-wrapped or full) on CPU, in fp32."""

    def encode(self, rows: Sequence[dict]) -> list[Example | None]:
        """Encode rows (``{"record": …}``) in one batched call; None for a row it cannot use."""

    def collate(self, examples: Sequence[Example], packing: bool) -> dict[str, Any]:
        """Tensors for one micro-batch; must include ``real_tokens`` and ``tokens`` (ints)."""

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        """Summed loss over the batch and the count it is a sum over (examples or tokens)."""

    def score(self, model: torch.nn.Module, rows: Sequence[dict]) -> dict[str, Any]:
        """Task metrics on held-out rows (Evaluate reads this shape)."""

    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        """Write final weights (adapter or full model) as safetensors, plus tokenizer."""

    def state(self) -> dict[str, Any]:
        """JSON-friendly facts a later load needs (label list, max length …)."""

    def restore(
        self, base_path: Path, weights_dir: Path, state: dict[str, Any], config: TrainConfig
    ) -> torch.nn.Module:
        """The trained model rebuilt from what ``save`` wrote and ``state`` said (eval mode);
        the handler is ready to ``predict_rows`` and ``score`` afterwards (predict stage)."""

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """The task's natural output per row ``{"record": …}`` (label + scores, spans, answer …)."""


class HandlerHooks:
    """The protocol's two hooks with do-nothing defaults: a handler inherits them and overrides
    what it needs (RAG and seq2seq bind to the project; seq2seq reports distillation metrics)."""

    def bind(self, project: Project, run_dir: Path) -> None:
        return None

    def step_metrics(self) -> dict[str, Any]:
        return {}


@dataclass(slots=True)
class PackedRows:
    """Examples laid out in rows. ``segment`` is the example's index in the batch, -1 for pad."""

    input_ids: Any  # LongTensor [rows, length]
    position_ids: Any  # LongTensor [rows, length], restarting at 0 per example
    segment: Any  # LongTensor [rows, length]
    tokens: int  # rows * length, what the model computes over
    real_tokens: int  # sum of example lengths


def lay_out(
    examples: Sequence[Example], pad_id: int, packing: bool, pack_length: int = 0
) -> tuple[PackedRows, list[list[int]]]:
    """Place examples into rows: one per row (padded), or packed first-fit into rows of
    ``max(pack_length, longest example)`` tokens.

    Returns the rows and, per row, the example indices in the order they sit in that row.
    """
    import torch

    lengths = [e.length for e in examples]
    width = max(lengths)
    if packing:
        groups = pack_rows(lengths, max(width, pack_length))
        width = max(sum(lengths[i] for i in g) for g in groups)
    else:
        groups = [[i] for i in range(len(examples))]
    ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(groups), width), dtype=torch.long)
    seg = torch.full((len(groups), width), -1, dtype=torch.long)
    for r, group in enumerate(groups):
        at = 0
        for i in group:
            n = lengths[i]
            ids[r, at : at + n] = torch.as_tensor(examples[i].input_ids)
            pos[r, at : at + n] = torch.arange(n)
            seg[r, at : at + n] = i
            at += n
        # trailing padding continues the last example's positions: a causal model then sees
        # no extra segment (real tokens never attend forward to it) and keeps its fast
        # unmasked path; bidirectional handlers mask padding by ``segment`` instead
        last = lengths[group[-1]]
        pos[r, at:] = torch.arange(last, last + width - at)
    rows = PackedRows(ids, pos, seg, tokens=ids.numel(), real_tokens=sum(lengths))
    return rows, groups
