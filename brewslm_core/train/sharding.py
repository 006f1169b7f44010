"""How the ranks share the model: whole copies with summed gradients, or FSDP2 shards.

``Replicated`` is one process, or data parallelism with the DDP arithmetic (every rank holds
the whole model; ``Dist.sum_grads`` sums gradients with one all-reduce). ``Sharded`` runs
``fully_shard`` on every transformer block (the ``_no_split_modules`` classes, found through
peft wrappers): each rank keeps a 1/world slice of the blocks' weights, gradients and optimizer
state, and gathers a block only while it computes.

What lies outside the blocks (embeddings, final norm, LM head, task heads) stays replicated and
is summed by the same all-reduce as under DDP. That is deliberate: handlers call submodules
directly (``get_decoder()`` then ``get_output_embeddings()``, adapters switched off for a
reference pass), so a root-level FSDP unit, which only gathers its weights inside the root's
own forward, would meet sharded weights; tied input/output embeddings would also have to share
one unit. Blocks are only ever run by their parent's forward, and hold nearly all the weights.

Both answer the same calls, so the engine's loop is the same for either. Checkpoints and the
saved adapter are written in one format whatever the layout: full tensors keyed by parameter
name, an optimizer state keyed by trainable-parameter index (``torch.optim`` order), so a
sharded run resumes unsharded and the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import read_checkpoint, rng_for_rank, rng_state, set_rng_state, trainable_state
from .distributed import Dist

if TYPE_CHECKING:
    import torch

    from .config import TrainConfig


class Replicated:
    """Every rank holds the whole model (one process, or DDP arithmetic over several)."""

    evaluates_on_every_rank = False  # rank 0 scores alone: its forward needs no peers

    def __init__(self, dist: Dist, note: str | None = None) -> None:
        self.dist = dist
        self.note = note

    @property
    def name(self) -> str:
        return "ddp" if self.dist.active else "none"

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        # start every rank from rank 0's weights (freshly initialised heads may differ)
        self.dist.broadcast_params([p for p in model.parameters() if p.requires_grad])
        return model

    def optimizer_options(self, params: Sequence[torch.Tensor], device: torch.device) -> dict[str, Any]:
        # the fused kernel updates all tensors in one pass: a cheaper optimizer step
        return {"fused": device.type in ("cpu", "cuda")}

    def before_backward(self, model: torch.nn.Module, last: bool) -> None:
        """Called before each micro-batch's backward; ``last`` marks the step's final one."""

    def sync_grads(self, params: Sequence[torch.Tensor]) -> None:
        self.dist.sum_grads(params)

    def clip(self, params: Sequence[torch.Tensor], max_norm: float, count: int = 1) -> float:
        """Grads are sums over ``count`` (examples or tokens): make them means and clip them to
        ``max_norm`` in one multiply; the norm of the means."""
        import torch

        # a sparse (coalesced) grad counts by its rows (embedding_rows.py)
        grads = [g._values() if g.is_sparse else g for g in (p.grad for p in params) if g is not None]
        if not grads:
            return 0.0
        total = float(torch.nn.utils.get_total_norm(grads)) / count
        factor = _factor(total, max_norm, count)
        if factor != 1.0:
            torch._foreach_mul_(grads, factor)
        return total

    # ---- state in the one on-disk format ------------------------------------------------------
    def weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Full trainable tensors by name (meaningful on rank 0; every rank must call it)."""
        return trainable_state(model)

    def everywhere(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Full trainable tensors by name on every rank (for checksums; collective)."""
        return trainable_state(model)

    def optimizer_state(self, model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
        return optimizer.state_dict()

    def load_weights(self, model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
        import torch

        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)

    def load_optimizer(self, model: torch.nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)

    def gather(self, model: torch.nn.Module, optimizer: Any) -> tuple[dict, dict, list]:
        """(weights, optimizer state, every rank's RNG state) for a checkpoint.

        Collective: every rank calls it; only rank 0's copy is complete.
        """
        weights = self.weights(model)
        optim = self.optimizer_state(model, optimizer)
        return weights, optim, self.dist.gather_objects(rng_state())

    def restore(self, path: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> dict:
        """Load a checkpoint (weights, optimizer, scheduler, this rank's RNG); return its meta."""
        weights, state, meta = read_checkpoint(path)
        names = trainable_names(model)
        missing = [n for n in names if n not in weights]
        if missing:
            raise RuntimeError(f"checkpoint {path} lacks {len(missing)} trainable tensors: {missing[:3]}")
        self.load_weights(model, weights)
        self.load_optimizer(model, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(rng_for_rank(state, self.dist.rank, self.dist.world))
        return meta

    def save(self, handler: Any, config: TrainConfig, model: torch.nn.Module, out_dir: Path) -> None:
        if self.dist.main:
            handler.save(model, out_dir)


class Sharded(Replicated):
    """FSDP2 over the transformer blocks; the rest replicated (see the module doc)."""

    evaluates_on_every_rank = True  # a sharded forward gathers blocks from every rank

    @property
    def name(self) -> str:
        return "fsdp"

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        super().prepare(model)  # identical starting weights before they are cut into shards
        self.units = shard_blocks(model)
        if not self.units:
            raise ValueError(
                f"fsdp=true but {type(model).__name__} has no transformer blocks to shard "
                "(no _no_split_modules classes found); train with fsdp=false"
            )
        for unit in self.units:
            # The engine sums per-example losses and divides once by the step's global count:
            # reduce-scatter must sum (FSDP's default averages over ranks). A plain SUM with
            # a divide factor of 1 (a no-op); gloo has no pre-multiplied sum ...
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)
            # ... and a parameter one rank's batches missed still takes part, as zeros
            unit.set_reduce_scatter_unused_params(True)
        return model

    def optimizer_options(self, params: Sequence[torch.Tensor], device: torch.device) -> dict[str, Any]:
        # the fused and foreach kernels refuse a list mixing sharded and plain tensors; the
        # per-tensor loop does the same arithmetic
        mixed = len({_is_sharded(p) for p in params}) > 1
        return {"foreach": not mixed, "fused": False}

    def before_backward(self, model: torch.nn.Module, last: bool) -> None:
        # accumulate micro-batches locally; reduce-scatter once, after the step's last one
        for unit in self.units:
            unit.set_requires_gradient_sync(last, recurse=False)

    def sync_grads(self, params: Sequence[torch.Tensor]) -> None:
        """Blocks were reduce-scattered (summed) by the last backward; the replicated rest is
        summed here, as under DDP."""
        self.dist.sum_grads([p for p in params if not _is_sharded(p)])

    def clip(self, params: Sequence[torch.Tensor], max_norm: float, count: int = 1) -> float:
        """As ``Replicated.clip`` over sharded and replicated gradients together: a shard adds
        its local squares (summed over ranks), a replicated gradient counts once."""
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        # on the grads' device: nccl reduces only CUDA tensors
        zero = torch.zeros((), dtype=torch.float64, device=params[0].device if params else "cpu")
        local = sum((g.to_local().double().pow(2).sum() for g in grads if _is_sharded(g)), zero)
        dist.all_reduce(local)
        plain = sum((g.double().pow(2).sum() for g in grads if not _is_sharded(g)), zero)
        total = float((local + plain).sqrt()) / count
        factor = _factor(total, max_norm, count)
        if factor != 1.0:
            for g in grads:
                g.mul_(factor)
        return total

    def _options(self, cpu_offload: bool = True) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload, ignore_frozen_params=True)

    def weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        # all-gathers every trainable tensor; with cpu_offload only rank 0 keeps the result
        full = get_model_state_dict(model, options=self._options())
        names = set(trainable_names(model))
        return {k: v.contiguous() for k, v in full.items() if k in names}

    def everywhere(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        full = get_model_state_dict(model, options=self._options(cpu_offload=False))
        names = set(trainable_names(model))
        return {k: v.detach().cpu() for k, v in full.items() if k in names}

    def optimizer_state(self, model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        full = get_optimizer_state_dict(model, optimizer, options=self._options())
        if not self.dist.main:
            return {}
        return by_index(full, trainable_names(model))

    def load_weights(self, model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        # every rank read the same file: each keeps its own slice of the full tensors
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(model, dict(weights), options=options)

    def load_optimizer(self, model: torch.nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, optimizer, by_name(state, trainable_names(model)), options=options)

    def save(self, handler: Any, config: TrainConfig, model: torch.nn.Module, out_dir: Path) -> None:
        """Gather the trained tensors (every rank takes part); rank 0 loads them into a freshly
        built, unsharded model and saves that the usual way."""
        weights = self.weights(model)
        if not self.dist.main:
            return
        plain = handler.build_model(config)
        Replicated.load_weights(self, plain, weights)
        handler.save(plain, out_dir)


def choose(config: TrainConfig, dist: Dist) -> Replicated:
    """FSDP when asked for and there are ranks to shard across; otherwise whole copies.

    ``fsdp=true`` on one process trains unsharded (there is nothing to split across) and says
    so in the plan and the run's event, rather than refusing a config that scales out as is.
    """
    if config.fsdp and dist.active:
        return Sharded(dist)
    note = "fsdp=true with one process: trained unsharded" if config.fsdp else None
    return Replicated(dist, note)


# ---- pieces ---------------------------------------------------------------------------------
def trainable_names(model: torch.nn.Module) -> list[str]:
    """Trainable parameter names in ``model.parameters()`` order: the optimizer's indices."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def block_classes(model: torch.nn.Module) -> set[str]:
    """Class names of the repeated blocks, from every transformers model inside ``model``
    (through peft and handler wrappers)."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(type(module), "_no_split_modules", None) or ())
    return names


def shard_blocks(model: torch.nn.Module) -> list[Any]:
    """``fully_shard`` every outermost block of ``model``; the sharded units."""
    from torch.distributed.fsdp import fully_shard

    names = block_classes(model)
    units: list[Any] = []
    for module in model.modules():
        if type(module).__name__ in names and not any(_contains(u, module) for u in units):
            units.append(module)
    for unit in units:
        fully_shard(unit)
    return units


def _contains(outer: torch.nn.Module, inner: torch.nn.Module) -> bool:
    return any(m is inner for m in outer.modules())


def _is_sharded(t: Any) -> bool:
    return hasattr(t, "to_local")  # a DTensor


def by_index(state: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """An optimizer state keyed by parameter name -> keyed by index, as ``torch.optim`` saves."""
    index = {n: i for i, n in enumerate(names)}
    return {
        "state": {index[k]: v for k, v in state["state"].items()},
        "param_groups": [{**g, "params": [index[k] for k in g["params"]]} for g in state["param_groups"]],
    }


def by_name(state: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The inverse of ``by_index``."""
    return {
        "state": {names[int(k)]: v for k, v in state["state"].items()},
        "param_groups": [
            {**g, "params": [names[int(k)] for k in g["params"]]} for g in state["param_groups"]
        ],
    }


def _factor(total: float, max_norm: float, count: int) -> float:
    """What turns summed grads of norm ``count * total`` into means clipped to ``max_norm``."""
    return min(1.0, max_norm / (total + 1e-6)) / count
