"""Batches of token rows, for inference and training alike: one cutting rule, one padding.

The rule (`group`): rows sorted by length (training: within random pools of rows), a batch
closes when one more row would pass batch_size rows or batch_tokens padded tokens (B x L), so a
batch of long rows shrinks instead of running out of memory, and rows of similar length share a
batch (little padding). A row longer than batch_tokens still gets a batch of its own: budgets
bound memory, they never drop text.

  group         the index lists of the batches
  pad, padding_mask   right-padding into int64 (N, L) and the bool mask of real tokens
  padded_batches      inference: `Batch` tensors of lists of ids (Embedder.encode, pipelines)
  collate       training: task features (dicts of lists) -> padded tensors with labels
  TaskBatches   endless, resumable training batches of features for one rank
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = -100  # the label every loss skips (padding, unselected tokens)
POOL_BATCHES = 50  # training batches are formed within pools of 50 batches' worth of rows


def group(lengths: Sequence[int], batch_size: int | None = None, batch_tokens: int = 8192,
          shuffle: bool = False, seed: int = 0,
          pool_batches: int = POOL_BATCHES) -> list[list[int]]:
    """Row indices grouped into batches of at most batch_size rows (None: no row limit) and
    batch_tokens padded tokens.

    shuffle=False: sorted by length (inference). shuffle=True: random pools of
    pool_batches x batch_size rows, each sorted by length and cut into batches, then the
    batches shuffled (training: random yet tightly padded; pool_batches=1 gives plain
    random batches, as the transformers Trainer's default).
    """
    if (batch_size is not None and batch_size < 1) or batch_tokens < 1:
        raise ValueError(f"batch_size and batch_tokens must be >= 1, got {batch_size}, "
                         f"{batch_tokens}")
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    most = batch_size or len(order) or 1
    if shuffle:
        rng.shuffle(order)
    pool = most * max(1, pool_batches) if shuffle else len(order) or 1
    pools = [sorted(order[i:i + pool], key=lengths.__getitem__)
             for i in range(0, len(order), pool)]
    out: list[list[int]] = []
    for rows in pools:
        current: list[int] = []
        for i in rows:  # sorted by length: row i is the longest of its batch so far
            if current and (len(current) >= most or lengths[i] * (len(current) + 1) > batch_tokens):
                out.append(current)
                current = []
            current.append(i)
        if current:
            out.append(current)
    if shuffle:
        rng.shuffle(out)
    return out


def pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ints into int64 (N, longest)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)


def padding_mask(lengths: Sequence[int], width: int) -> torch.Tensor:
    """bool (N, width): True at the first lengths[i] positions of row i (the real tokens)."""
    return torch.arange(width) < torch.as_tensor(lengths, dtype=torch.long)[:, None]


@dataclass
class Batch:
    """One padded inference batch of rows, sorted by length.

    index: int64 (B,) positions of these rows in the caller's list.
    input_ids, token_type_ids: int64 (B, L). attention_mask: bool (B, L), True = real token.
    lengths: int64 (B,) real tokens per row.
    """

    index: np.ndarray
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    lengths: np.ndarray


def padded_batches(rows: Sequence[Sequence[int]], batch_tokens: int, pad_id: int,
                   types: Sequence[Sequence[int]] | None = None,
                   device: torch.device | str = "cpu") -> Iterator[Batch]:
    """Cut N rows of token ids into length-sorted batches of at most batch_tokens (B x L).

    types: token type ids per row (None = zeros).
    """
    lengths = [len(r) for r in rows]
    for rows_of in group(lengths, None, batch_tokens):
        index = np.asarray(rows_of, dtype=np.int64)
        ids = pad([rows[i] for i in rows_of], pad_id)
        tt = (pad([types[i] for i in rows_of], 0) if types is not None
              else torch.zeros_like(ids))
        real = np.asarray([lengths[i] for i in rows_of], dtype=np.int64)
        yield Batch(index, ids.to(device), padding_mask(real, ids.shape[1]).to(device),
                    tt.to(device), real)


def collate(features: Sequence[dict], pad_id: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Pad a batch: {prefix}input_ids int64 (B, L), {prefix}attention_mask bool (B, L),
    {prefix}token_type_ids int64 (B, L); per-token "labels" lists become (B, L) with -100
    padding; scalar fields become (B,) tensors (float for floats)."""
    ids = [f[prefix + "input_ids"] for f in features]
    out = {prefix + "input_ids": pad(ids, pad_id)}
    out[prefix + "attention_mask"] = padding_mask([len(r) for r in ids],
                                                  out[prefix + "input_ids"].shape[1])
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


class TaskBatches:
    """Endless, resumable training batches of features for one rank (the Trainer's data).

    Each epoch forms global batches of batch_size x world_size rows and batch_tokens x
    world_size padded tokens (`group`, shuffled with seed + epoch, length-grouped in pools
    of pool_batches); rank r takes the r-th of world_size near-equal slices of each, so W
    processes see the same global batches as one process with W times the batch. A global
    batch with fewer rows than processes (only when batch_tokens admits so few) is skipped.
    Yields lists of features; state_dict() / load_state_dict() resume exactly.
    """

    def __init__(self, features: Sequence[dict], batch_size: int, batch_tokens: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 pool_batches: int = POOL_BATCHES):
        self.features, self.seed, self.pool = features, seed, pool_batches
        self.lengths = [len(f["input_ids"]) for f in features]
        self.rank, self.world = rank, world_size
        self.batch_size, self.batch_tokens = batch_size * world_size, batch_tokens * world_size
        self.epoch = self.position = 0
        self.steps_per_epoch = len(self._epoch(0))

    def _epoch(self, epoch: int) -> list[list[int]]:
        order = group(self.lengths, self.batch_size, self.batch_tokens, shuffle=True,
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
