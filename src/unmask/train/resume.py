"""Training checkpoints that survive being killed at any moment, and resume exactly.

Layout under a run directory:

    checkpoints/step-00000100/        one complete checkpoint
        state.safetensors           model(s) and optimizer tensors (no pickle anywhere)
        state.json                  step, optimizer hyper-parameters, data cursor, config, ...
        rng-rank0.safetensors       each rank's torch (and CUDA) RNG state
        rng-rank0.json              each rank's Python and NumPy RNG state
    checkpoints/latest              the name of the newest complete checkpoint

A sharded run (`--shard`, FSDP2) writes, instead of state.safetensors,

        shards/shard-0000R-model-00001-of-00001.safetensors   rank R-1's slices of every
                                    weight and AdamW moment (torch.distributed.checkpoint, DCP,
                                    safetensors with each slice's offsets in its header)
        state.json                  as above, with "sharded": true and the optimizer's groups

DCP reads any slicing back into any other, so a sharded checkpoint resumes with another number
of processes (CheckpointWriter.write_sharded, apply_checkpoint); its RNG states are
per process: a process without a saved state (more processes than saved) starts a fresh one.
A shared file system is needed across machines: every rank writes into the same folder.

Atomicity: a checkpoint is written into `step-XXXXXXXX.tmp-<pid>` (rank 0's pid), its files
flushed to disk, then renamed to its final name, and only then is `latest` replaced (write a
temporary file, rename over the old one). A kill at any point leaves `latest` naming a complete
checkpoint; half-written `.tmp-*` directories are ignored and cleaned up by the next save.
Each state.json carries the run's id: cleanup (keep the newest `keep`, by step number) only
ever deletes checkpoints of the current run. A checkpoint whose files are damaged (truncated
by a full disk, say) does not end the run: `find_checkpoint` names the file and falls back
to the newest intact one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"
_STATE = "state"
SHARDS = "shards"


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, obj: Any) -> None:
    _fsync_write(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() -> (tensors, JSON-able rest)."""
    tensors = {f"optim.{index}.{key}": value.detach().cpu()
               for index, entries in state["state"].items() for key, value in entries.items()}
    return tensors, {"param_groups": state["param_groups"]}


def _param_groups(meta: dict) -> list[dict]:
    """The saved optimizer groups, betas back to tuples (JSON made them lists)."""
    return [{**g, "betas": tuple(g["betas"])} if "betas" in g else g
            for g in meta["param_groups"]]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": _param_groups(meta)}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """This process's RNG states: (tensors for torch / CUDA, JSON for Python and NumPy)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of rng_state."""
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


class DamagedCheckpoint(OSError):
    """A checkpoint file that cannot be read back (truncated, missing); the message names it."""


def checkpoint_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def _step(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def complete_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Renamed-into-place checkpoints, oldest first (by step number, not by name)."""
    root = checkpoint_root(run_dir)
    found = [p for p in root.glob("step-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=_step)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` names, when it is there, or None."""
    root = checkpoint_root(run_dir)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / f"{_STATE}.json").is_file() else None


class CheckpointWriter:
    """Writes one checkpoint cooperatively from every rank (see the module docstring).

    Call begin() on rank 0, barrier, write_rng() on every rank, barrier, commit() on rank 0.
    tag: rank 0's pid (every rank must pass the same). run_id: this run's id (cleanup).
    """

    def __init__(self, run_dir: str | os.PathLike, step: int, keep: int, run_id: str,
                 tag: int):
        self.root = checkpoint_root(run_dir)
        self.name = f"step-{step:08d}"
        self.tmp = self.root / f"{self.name}.tmp-{tag}"
        self.keep, self.run_id = keep, run_id

    def prepare(self) -> None:
        """Rank 0: the temporary folder, after removing what killed saves left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob("*.tmp*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        self.tmp.mkdir()

    def write_meta(self, meta: dict) -> None:
        """Rank 0: the JSON state (meta plus this run's id)."""
        _write_json(self.tmp / f"{_STATE}.json", {**meta, "run_id": self.run_id})

    def begin(self, models: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
              meta: dict) -> None:
        """Rank 0: model and optimizer tensors plus JSON state, into the temporary folder."""
        self.prepare()
        tensors = _own_storage({f"{prefix}.{key}": value.detach().cpu()
                                for prefix, model in models.items()
                                for key, value in model.state_dict().items()})
        optim_tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
        save_file({k: v.contiguous() for k, v in tensors.items()},
                  str(self.tmp / f"{_STATE}.safetensors"))
        self.write_meta({**meta, "optimizer": optim_meta})

    def write_sharded(self, objective: torch.nn.Module,
                      optimizer: torch.optim.Optimizer) -> dict:
        """Every rank, after prepare() and a barrier: its slices of the sharded (FSDP2) weights
        and AdamW state into tmp/shards (DCP, collective). Returns the optimizer's JSON part
        ({"param_groups"}, parameters by name) for write_meta's "optimizer"."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import HuggingFaceStorageWriter
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(objective, optimizer)
        dcp.save({"model": _own_storage(model_state), "optim": optim_state["state"]},
                 storage_writer=HuggingFaceStorageWriter(str(self.tmp / SHARDS),
                                                         save_distributed=True))
        return {"param_groups": optim_state["param_groups"]}

    def write_rng(self, rank: int) -> None:
        """Every rank: its own RNG state."""
        tensors, meta = rng_state()
        save_file(tensors, str(self.tmp / f"rng-rank{rank}.safetensors"))
        _write_json(self.tmp / f"rng-rank{rank}.json", meta)

    def commit(self) -> Path:
        """Rank 0: rename into place, point `latest` at it, drop this run's old checkpoints."""
        final = self.root / self.name
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.tmp, final)
        pointer_tmp = self.root / f"{LATEST}.tmp"
        _fsync_write(pointer_tmp, self.name.encode())
        os.replace(pointer_tmp, self.root / LATEST)
        ours = [p for p in complete_checkpoints(self.root.parent) if _run_id(p) == self.run_id]
        for old in ours[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final


def _own_storage(state: dict) -> dict:
    """state with shared weights (tied, or ELECTRA's shared embeddings: one storage under two
    names) cloned: safetensors stores one name per storage. Sharded values are DTensors:
    what this rank stores is their local slice."""
    from torch.distributed.tensor import DTensor

    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        local = value.to_local() if isinstance(value, DTensor) else value
        storage = local.untyped_storage().data_ptr()
        out[key] = value.detach().clone() if storage in seen else value
        seen.add(storage)
    return out


def _run_id(path: Path) -> str | None:
    try:
        return _read_json(path / f"{_STATE}.json").get("run_id")
    except (OSError, ValueError):
        return None


def read_checkpoint(path: Path, rank: int, world_size: int) -> dict:
    """Everything this rank needs from a checkpoint, read (not yet applied).

    Returns {"meta", "tensors", "rng", "path"}. Raises DamagedCheckpoint naming the unreadable file,
    or ValueError when it was written by another number of processes.
    """
    def read(name: str, reader):
        file = path / name
        if not file.is_file():
            raise DamagedCheckpoint(f"{file} is missing")
        try:
            return reader(file)
        except Exception as err:  # noqa: BLE001 (truncated JSON or safetensors, bad bytes)
            raise DamagedCheckpoint(f"{file} is damaged ({type(err).__name__}: {err})") from None

    meta = read(f"{_STATE}.json", _read_json)
    saved_world, tensors = meta.get("world_size", 1), None
    if meta.get("sharded"):  # DCP re-slices; the data cursor is re-split by the loop
        files = sorted((path / SHARDS).glob("*.safetensors"))
        if not files:
            raise DamagedCheckpoint(f"{path / SHARDS} holds no shard files")
        for file in files:  # a truncated file fails here (header vs size), not mid-load
            read(f"{SHARDS}/{file.name}", _check_safetensors)
    elif saved_world != world_size:
        raise ValueError(f"{path} was written by {saved_world} process(es), this run has "
                         f"{world_size}: resume with {saved_world} (RNG states and the data "
                         "cursor are per process; checkpoints of --shard runs resume with "
                         "any number)")
    else:
        tensors = read(f"{_STATE}.safetensors", load_file)
    rng = None  # sharded, more processes than saved: the loop seeds a fresh one
    if rank < saved_world:
        rng = (read(f"rng-rank{rank}.safetensors", load_file),
               read(f"rng-rank{rank}.json", _read_json))
    return {"meta": meta, "tensors": tensors, "rng": rng, "path": path}


def _check_safetensors(file: Path) -> None:
    """Raise when a safetensors file's header or size is wrong (reads no tensor data)."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            f.get_slice(key).get_shape()


def find_checkpoint(run_dir: str | os.PathLike, rank: int = 0, world_size: int = 1,
                    say=print) -> dict | None:
    """The newest checkpoint of a run that reads back whole, as read_checkpoint(...) gives it.

    A damaged one is reported through `say` (naming the file) and skipped. None if there is
    no intact checkpoint.
    """
    for path in reversed(complete_checkpoints(run_dir)):
        try:
            return read_checkpoint(path, rank, world_size)
        except DamagedCheckpoint as err:
            say(f"warning: {err}; trying the checkpoint before it")
    return None


def apply_checkpoint(state: dict, objective: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> None:
    """Restore the objective's models, the optimizer and this rank's RNG (when it was saved;
    else the caller seeds a fresh one) from read_checkpoint's result. A sharded checkpoint is
    restored on every rank (collective) into the FSDP2-sharded `objective`, however many
    processes wrote it: DCP reads each rank's slices out of whichever files hold them."""
    meta = state["meta"]
    if meta.get("sharded"):
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import HuggingFaceStorageReader
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_state, optim_state = get_state_dict(objective, optimizer)  # this run's slices
        target = {"model": _own_storage(model_state), "optim": optim_state["state"]}
        dcp.load(target, storage_reader=HuggingFaceStorageReader(str(state["path"] / SHARDS)))
        set_state_dict(objective, optimizer, model_state_dict=target["model"],
                       optim_state_dict={"state": target["optim"],
                                         "param_groups": _param_groups(meta["optimizer"])})
    else:
        tensors = state["tensors"]
        for prefix, model in objective.models().items():
            own = {k[len(prefix) + 1:]: v for k, v in tensors.items()
                   if k.startswith(prefix + ".")}
            model.load_state_dict(own)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    if state["rng"] is not None:
        set_rng_state(*state["rng"])


__all__ = ["SHARDS", "CheckpointWriter", "DamagedCheckpoint", "apply_checkpoint",
           "checkpoint_root", "complete_checkpoints", "find_checkpoint", "latest_checkpoint", "read_checkpoint",
           "rng_state", "set_rng_state"]
