"""Run alone or under torchrun: read the RANK variables, pick gloo (CPU) or nccl (GPU); wrap
the model in DDP (every process holds all of it) or shard it with FSDP2 (`--shard`).

    torchrun --nproc-per-node 2 -m unmask.cli pretrain ...   # or: torchrun ... $(which unmask)
    torchrun --nnodes 2 --nproc-per-node 8 ... pretrain --shard ...   # a model too big for one GPU

Sharding (torch.distributed.fsdp.fully_shard, "FSDP2"): every parameter, its gradient and its
AdamW moments are split along dim 0 over the W processes, so each holds about 1/W of the model
state; a layer's full weights exist only while it runs (all-gathered before its forward and
backward, freed after) and gradients are reduce-scattered. `shard` groups the weights by
encoder block (one all-gather per block), then the rest under the objective (the root).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


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
    if dist.is_initialized():  # also the one-process group of a sharded run (process_group)
        dist.destroy_process_group()


def process_group(d: Dist) -> None:
    """Make sure a process group exists: FSDP2 and its checkpoints need one even in a single
    process (a sharded checkpoint resumed by one process); that one lives in memory
    (HashStore), no port."""
    if not dist.is_initialized():
        if d.enabled:
            raise RuntimeError("torchrun's process group is gone; call distributed.setup()")
        dist.init_process_group("nccl" if d.device.type == "cuda" else "gloo",
                                store=dist.HashStore(), rank=0, world_size=1)


def shard_units(objective: nn.Module) -> list[nn.Module]:
    """The FSDP groups under the objective's own: every encoder Block that no other module
    shares. Blocks hold nearly all the weights and are only ever run through their forward,
    which is where FSDP2 gathers a group. Everything else (embeddings, heads, relative tables)
    stays in the objective's group, gathered for the whole step: objectives and heads read
    weights outside their module's forward (the MLM decoder reads
    encoder.embeddings.word.weight), which a group of its own would have freed by then.
    ALBERT's blocks, each run for several layers, also stay there."""
    from unmask.model import Encoder

    units: list[nn.Module] = []
    for encoder in (m for m in objective.modules() if isinstance(m, Encoder)):
        if encoder.config.num_blocks == encoder.config.num_layers:
            units.extend(b for b in encoder.layers if _self_contained(b, objective))
    return units


def _self_contained(unit: nn.Module, root: nn.Module) -> bool:
    """Whether no module of `root` outside `unit` holds one of unit's submodules or weights
    (a shared module or a tied weight would end up in two groups)."""
    inside = {id(m) for m in unit.modules()}
    weights = {id(p) for p in unit.parameters()}
    for module in root.modules():
        if id(module) in inside:
            continue
        if any(c is not None and c is not unit and id(c) in inside
               for c in module._modules.values()):
            return False
        if any(p is not None and id(p) in weights for p in module._parameters.values()):
            return False
    return True


def shard(objective: nn.Module, d: Dist, bf16: bool = False) -> None:
    """Apply FSDP2 in place: fully_shard each of shard_units(), then the objective (the root).

    Parameters become DTensors sharded on dim 0 over the W processes and move to d.device
    (a model built on the CPU never exists whole on the GPU); build the optimizer afterwards.
    bf16: all-gather and compute with bf16 weights, reduce gradients in fp32 (the sharded
    master weights and AdamW state stay fp32), for bf16 autocast runs.
    Refuses parametrized weights (--embedding-sharing gdes): the parametrization holds the
    generator's table outside the module tree, where sharding cannot follow it.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.nn.utils import parametrize

    if any(parametrize.is_parametrized(m) for m in objective.modules()):
        raise ValueError("--shard cannot shard parametrized weights (--embedding-sharing "
                         "gdes); use --embedding-sharing es or none, or train without --shard")
    process_group(d)
    # The objective returns views (terms[None]); the loop never changes them in place, which
    # is what FSDP2 warns about at every step.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view")
    mesh = init_device_mesh(d.device.type, (d.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if bf16 else MixedPrecisionPolicy()
    for unit in shard_units(objective):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(objective, mesh=mesh, mp_policy=policy)


__all__ = ["Dist", "cleanup", "process_group", "resolve_device", "setup", "shard",
           "shard_units"]
