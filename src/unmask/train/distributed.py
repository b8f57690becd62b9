"""Run alone or under torchrun: read the RANK variables, pick gloo (CPU) or nccl (GPU).

    torchrun --nproc-per-node 2 -m unmask.cli pretrain ...   # or: torchrun ... $(which unmask)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process sits: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a no-op alone); returns a tensor on this process's device."""
        if not self.enabled:
            return tensor
        # gloo reduces CPU tensors, nccl GPU tensors: move there and back.
        t = tensor.to(self.device)
        dist.all_reduce(t)
        return t.to(tensor.device)


def setup(device: str = "auto") -> Dist:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), or alone.

    device: "auto" (the local GPU when there is one, else CPU), "cpu" or "cuda".
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no GPU; use --device cpu")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local, dev)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Dist", "cleanup", "setup"]
