"""Data parallel training across processes started by torchrun / accelerate launch.

The launcher sets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; with WORLD_SIZE > 1 the engine
joins a process group (gloo on CPU, nccl on CUDA), gives every rank its share of each step's
micro-batches, sums gradients and step counts across ranks before the optimizer step, and
agrees on stopping once per step so every rank leaves the loop at the same step.

Gradients are summed with one all-reduce per optimizer step over a flat buffer rather than
through a ``DistributedDataParallel`` wrapper: the engine divides summed losses by the step's
true count (tokens or examples) across all ranks, several handlers call the model more than
once per loss or reach into its attributes (adapters on/off), and gradient accumulation then
needs no ``no_sync`` bookkeeping. The arithmetic is the one DDP does (sum, then scale).
With ``fsdp=true`` the transformer blocks are sharded instead (``sharding.py``); this module
keeps the process group, the collectives both layouts share and the batch split.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # True when this module started the process group

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, device: torch.device) -> None:
        if not self.active:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world)
            self.owns_group = True

    def close(self, barrier: bool = True) -> None:
        if not self.active:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            if barrier:
                dist.barrier()  # the other ranks wait until rank 0 has written its files
            if self.owns_group:
                dist.destroy_process_group()
                self.owns_group = False

    # ---- collectives ------------------------------------------------------------------------
    def broadcast_params(self, params: Sequence[torch.Tensor]) -> None:
        """Start every rank from rank 0's weights (freshly initialised heads differ per rank)."""
        if not self.active:
            return
        import torch.distributed as dist

        for p in params:
            dist.broadcast(p.data, src=0)

    def sum_grads(self, params: Sequence[torch.Tensor]) -> None:
        """Sum gradients over ranks in place, one all-reduce over a flat buffer."""
        if not self.active or not params:
            return
        import torch
        import torch.distributed as dist

        # a rank whose batches missed a parameter still has to take part: zeros stand in
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def sum_numbers(self, values: Sequence[float], device: torch.device) -> list[float]:
        if not self.active:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order; ``[value]`` on one process."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def max_code(self, code: int, device: torch.device) -> int:
        """The largest of every rank's code: the stop reason all ranks agree on."""
        if not self.active:
            return code
        import torch
        import torch.distributed as dist

        t = torch.tensor([code], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())


def from_env() -> Dist:
    """The rank layout a launcher set up, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    if world > 1 and not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}; check the launcher")
    return Dist(rank=rank, world=world)


def shard(batches: Sequence[list[int]], rank: int, world: int) -> list[list[int]]:
    """This rank's batches: every ``world``-th, wrapped round so all ranks get the same count.

    Equal counts keep the ranks' optimizer steps (and collectives) in lock step; the few
    repeated batches at an epoch's end are the usual price, as with a distributed sampler.
    """
    if world <= 1:
        return list(batches)
    if not batches:
        return []
    per_rank = -(-len(batches) // world)
    return [list(batches[(rank + world * i) % len(batches)]) for i in range(per_rank)]


def params_checksum(weights: Mapping[str, torch.Tensor]) -> str:
    """sha256 over full trainable tensors by name: equal on every rank after a data-parallel step."""
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(weights[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
