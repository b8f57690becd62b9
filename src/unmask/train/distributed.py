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


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The torch.device for a --device flag, or one clear ValueError naming the fix.

    name: "auto" (the local GPU when there is one, else the CPU), "cpu", "cuda" or "cuda:N".
    local_rank: the GPU of a torchrun process when name is "auto" or "cuda".
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cpu":
        return device
    if not torch.backends.cuda.is_built():
        raise ValueError(f"--device {name}: this torch build has no CUDA (a CPU-only wheel); "
                         "use --device cpu, or install a CUDA build of torch")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no GPU (driver, or "
                         "CUDA_VISIBLE_DEVICES); use --device cpu")
    index = local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there is no GPU {index} "
                         f"({torch.cuda.device_count()} visible)")
    return torch.device("cuda", index)


def setup(device: str = "auto") -> Dist:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), or alone.

    device: see resolve_device (checked before anything else starts).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Dist", "cleanup", "resolve_device", "setup"]
