"""Group encoded features into batches of similar length, and pad them into tensors.

A feature is a dict of Python lists / numbers from a task's `features()`; it has "input_ids"
(list[int]) and any label fields. Batches hold at most `batch_size` rows and at most
`batch_tokens` padded tokens, so a batch of long rows shrinks instead of running out of
memory, and rows of similar length share a batch (little padding).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from unmask.heads import IGNORE_INDEX

POOL_BATCHES = 50  # batches are formed within pools of 50 batches' worth of rows, sorted by length


def batches(features: Sequence[dict], batch_size: int = 32, batch_tokens: int = 8192,
            shuffle: bool = False, seed: int = 0, length_key: str = "input_ids",
            pool_batches: int = POOL_BATCHES) -> list[list[int]]:
    """Indices of `features`, grouped into batches.

    shuffle=False: sorted by length (inference). shuffle=True: random pools of
    pool_batches x batch_size rows, each sorted by length and cut into batches, then the
    batches shuffled (training: random yet tightly padded; pool_batches=1 gives plain
    random batches, as the transformers Trainer's default). Returns a list of index lists.
    """
    if batch_size < 1 or batch_tokens < 1:
        raise ValueError(f"batch_size and batch_tokens must be >= 1, got {batch_size}, "
                         f"{batch_tokens}")
    lengths = [len(f[length_key]) for f in features]
    order = list(range(len(features)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
        pool = batch_size * max(1, pool_batches)
        pools = [sorted(order[i:i + pool], key=lengths.__getitem__)
                 for i in range(0, len(order), pool)]
    else:
        pools = [sorted(order, key=lengths.__getitem__)]
    out: list[list[int]] = []
    for rows in pools:
        current: list[int] = []
        longest = 0
        for i in rows:
            wider = max(longest, lengths[i])
            if current and (len(current) >= batch_size or wider * (len(current) + 1)
                            > batch_tokens):
                out.append(current)
                current, wider = [], lengths[i]
            current.append(i)
            longest = wider
        if current:
            out.append(current)
    if shuffle:
        rng.shuffle(out)
    return out


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ints into int64 (N, longest)."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
    return out


def collate(features: Sequence[dict], pad_id: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Pad a batch: {prefix}input_ids int64 (B, L), {prefix}attention_mask bool (B, L),
    {prefix}token_type_ids int64 (B, L); per-token "labels" lists become (B, L) with -100
    padding; scalar fields become (B,) tensors (float for floats)."""
    ids = [f[prefix + "input_ids"] for f in features]
    out = {prefix + "input_ids": pad(ids, pad_id)}
    lengths = torch.tensor([len(r) for r in ids])
    out[prefix + "attention_mask"] = torch.arange(out[prefix + "input_ids"].shape[1]) < lengths[
        :, None]
    out[prefix + "token_type_ids"] = pad([f.get(prefix + "token_type_ids") or [0] * len(r)
                                          for f, r in zip(features, ids)], 0)
    if prefix:
        return out
    for key in features[0]:
        if key in ("input_ids", "token_type_ids") or key.startswith("_"):
            continue  # "_..." fields are bookkeeping (offsets, example ids), not model inputs
        values = [f[key] for f in features]
        if isinstance(values[0], list):
            out[key] = pad(values, IGNORE_INDEX)
        else:
            out[key] = torch.tensor(values, dtype=torch.float32 if isinstance(values[0], float)
                                    else torch.long)
    return out


def iterate(features: Sequence[dict], index_batches: list[list[int]]) -> Iterator[list[dict]]:
    """The features of each batch, in the order of `index_batches`."""
    for rows in index_batches:
        yield [features[i] for i in rows]


class TaskBatches:
    """Endless, resumable training batches of features for one rank (the Trainer's data).

    Each epoch forms global batches of batch_size x world_size rows and batch_tokens x
    world_size padded tokens (`batches`, shuffled with seed + epoch, length-grouped in pools
    of pool_batches); rank r takes the r-th of world_size near-equal slices of each, so W
    processes see the same global batches as one process with W times the batch. A global
    batch with fewer rows than processes (only when batch_tokens admits so few) is skipped.
    Yields lists of features; state_dict() / load_state_dict() resume exactly.
    """

    def __init__(self, features: Sequence[dict], batch_size: int, batch_tokens: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 pool_batches: int = POOL_BATCHES):
        self.features, self.seed, self.pool = features, seed, pool_batches
        self.rank, self.world = rank, world_size
        self.batch_size, self.batch_tokens = batch_size * world_size, batch_tokens * world_size
        self.epoch = self.position = 0
        self.steps_per_epoch = len(self._epoch(0))

    def _epoch(self, epoch: int) -> list[list[int]]:
        order = batches(self.features, self.batch_size, self.batch_tokens, shuffle=True,
                        seed=self.seed + epoch, pool_batches=self.pool)
        return [b for b in order if len(b) >= self.world]

    def __iter__(self) -> Iterator[list[dict]]:
        while True:
            order = self._epoch(self.epoch)
            while self.position < len(order):
                rows = order[self.position]
                self.position += 1
                n, r, w = len(rows), self.rank, self.world
                yield [self.features[i] for i in rows[r * n // w:(r + 1) * n // w]]
            self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


__all__ = ["TaskBatches", "batches", "collate", "iterate", "pad"]
