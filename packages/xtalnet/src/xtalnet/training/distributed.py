"""Distributed data parallel: the process group of a ``torchrun`` launch and the few
collectives the training loop needs (every rank takes the same decisions)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from xtalnet._device import resolve_device

__all__ = ["Dist", "setup_dist"]


@dataclass
class Dist:
    """This process's rank, the world size and the device; collective helpers that are
    plain values in a single process."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def max(self, *values: float) -> list[float]:
        """Element-wise maximum over the ranks (every rank takes the same decisions)."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


def setup_dist(device: str | None) -> Dist:
    """The process group of a ``torchrun`` launch (``WORLD_SIZE`` > 1), else one process."""
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, dev)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    initialised = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        initialised = True
    return Dist(rank, world, dev, initialised)
