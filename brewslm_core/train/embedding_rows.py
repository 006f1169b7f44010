"""Embedding tables trained row by row: sparse gradients, and AdamW over the rows used so far.

A full fine-tuning run updates every weight every step, but a text batch touches only the
vocabulary rows of its own tokens. With dense gradients the word-embedding table (MiniLM:
30,522 x 384, about half the model) costs a zero-filled gradient, a norm and a multiply in
the clip, and an AdamW pass over all of it, every step. Here the table's gradient is sparse
(the rows the batch used) and the optimizer step reads and writes only the rows touched at
least once so far.

That is exact, not an approximation: a row whose gradient has always been zero has both AdamW
moments at zero, and AdamW moves it by ``lr * 0 / (0 + eps) = 0``; weight decay (decoupled) is
applied to the whole table as AdamW does. The moments are kept whole in the optimizer's own
state, in ``torch.optim.AdamW``'s format, so checkpoints are the same with the lever on or off
and a run resumes either way. Rows touched before a resume are found again from the moments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


def row_tables(model: Any, params: Sequence[Any]) -> list[Any]:
    """The trainable ``nn.Embedding`` tables that can train by rows: not tied to another module
    (a causal LM's output layer reads every row), no max_norm or frequency scaling."""
    import torch

    trainable = {id(p) for p in params}
    holders = Counter(id(p) for m in model.modules() for p in m.parameters(recurse=False))
    return [
        m for m in model.modules()
        if isinstance(m, torch.nn.Embedding) and id(m.weight) in trainable
        and holders[id(m.weight)] == 1 and m.max_norm is None and not m.scale_grad_by_freq
    ]


class EmbeddingRows:
    """Sparse grads for ``row_tables(model, params)`` and the AdamW step over their used rows.

    The engine calls :meth:`coalesce` after the step's backwards (the clip then sees each
    table's rows once) and :meth:`step` before the optimizer's own step, which then skips the
    tables (their ``grad`` is taken off).
    """

    def __init__(self, model: Any, params: Sequence[Any]) -> None:
        self.tables = row_tables(model, params)
        for table in self.tables:
            table.sparse = True
        self.used: dict[int, Any] = {}  # id(weight) -> bool per row: has had a gradient

    def coalesce(self) -> None:
        for table in self.tables:
            grad = table.weight.grad
            if grad is not None and grad.is_sparse:
                table.weight.grad = grad.coalesce()

    def step(self, optimizer: Any) -> None:
        """AdamW on each table's used rows, with the optimizer's hyperparameters and state."""
        import torch

        groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        for table in self.tables:
            weight, grad = table.weight, table.weight.grad
            if grad is None:
                continue
            weight.grad = None  # the optimizer's own step skips the table
            group = groups[id(weight)]
            state = optimizer.state[weight]
            if not state:  # as torch.optim.AdamW starts it (the same checkpoint format)
                on_device = group["fused"] or group["capturable"]
                state["step"] = torch.zeros((), dtype=torch.float32,
                                            device=weight.device if on_device else "cpu")
                state["exp_avg"] = torch.zeros_like(weight)
                state["exp_avg_sq"] = torch.zeros_like(weight)
            used = self.used.get(id(weight))
            if used is None:  # a resumed run: the rows with a moment are the rows used
                used = (state["exp_avg_sq"] != 0).any(1) | (state["exp_avg"] != 0).any(1)
                self.used[id(weight)] = used
            index, values = grad._indices()[0], grad._values()
            used[index] = True
            rows = used.nonzero().squeeze(1)
            dense = values.new_zeros((len(rows), values.shape[1]))
            dense[torch.searchsorted(rows, index)] = values
            _adamw_rows(weight, dense, rows, state, group)


def _adamw_rows(weight: Any, grad: Any, rows: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
    """One AdamW step of ``weight[rows]`` with ``grad`` (one gradient row per entry of ``rows``)."""
    import torch
    from torch.optim.adam import adam

    if group["amsgrad"] or group["maximize"] or group["differentiable"]:
        raise ValueError("embedding rows support plain AdamW only (no amsgrad/maximize)")
    lr, decay = group["lr"], group["weight_decay"]
    with torch.no_grad():
        if decay:  # decoupled decay reaches every row, used or not, as AdamW's does
            weight.mul_(1 - lr * decay)
        param = weight.index_select(0, rows)
        exp_avg = state["exp_avg"].index_select(0, rows)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
        beta1, beta2 = group["betas"]
        adam(
            [param], [grad], [exp_avg], [exp_avg_sq], [], [state["step"]],
            foreach=group["foreach"], fused=group["fused"], capturable=group["capturable"],
            decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
            weight_decay=0.0, eps=group["eps"], maximize=False,
        )
        weight.index_copy_(0, rows, param)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
