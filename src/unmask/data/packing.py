"""Pack documents into fixed-length rows, keep their boundaries, and serve resumable batches.

Axis legend: B rows per batch (per rank), L = seq_len tokens per row, S document segments,
R rows in the packing plan, W world size (number of ranks).

Packing fills each row of L tokens with consecutive documents. Each piece of a document in a
row (a *segment*) is wrapped [CLS] ... [SEP]; a document longer than the room left in a row
continues in the next row, so no segment holds more than L - 2 content tokens. The boundaries
travel with the batch as `document_ids` (a document attends only to itself: feed them to
`unmask.masks.document`) and `position_ids` (restart at 0 in every segment), or, for an
unpadded path, as `cu_seqlens` from `cu_seqlens_from_document_ids`.

The plan (which segment goes in which row) is built once from the document lengths, in a
seeded shuffled document order; rows are then shuffled per epoch. A row is a *sample*: its
sample id is epoch * num_rows + row, unique over the whole run, so corruption keyed by sample
id is reproducible and still differs between epochs (row = sample_id % num_rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike

import numpy as np
import torch

from unmask.data.shards import TokenShards

__all__ = ["PackedBatches", "PackingPlan", "PackingStats", "cu_seqlens_from_document_ids",
           "plan_rows"]

_SPECIALS_PER_SEGMENT = 2  # [CLS] and [SEP]


@dataclass(frozen=True)
class PackingStats:
    """How well documents fill rows of seq_len tokens.

    efficiency: fraction of positions holding real tokens ([CLS]/[SEP] included);
    content_fraction: fraction holding document tokens; padding_waste = 1 - efficiency.
    """

    seq_len: int
    num_rows: int
    num_documents: int
    num_segments: int
    content_tokens: int
    special_tokens: int

    @property
    def positions(self) -> int:
        return self.num_rows * self.seq_len

    @property
    def padding_tokens(self) -> int:
        return self.positions - self.content_tokens - self.special_tokens

    @property
    def efficiency(self) -> float:
        return (self.content_tokens + self.special_tokens) / max(self.positions, 1)

    @property
    def content_fraction(self) -> float:
        return self.content_tokens / max(self.positions, 1)

    @property
    def padding_waste(self) -> float:
        return self.padding_tokens / max(self.positions, 1)

    def __str__(self) -> str:
        return (
            f"{self.num_documents} documents -> {self.num_segments} segments in "
            f"{self.num_rows} rows of {self.seq_len}: efficiency {self.efficiency:.2%} "
            f"(content {self.content_fraction:.2%}, [CLS]/[SEP] "
            f"{self.special_tokens / max(self.positions, 1):.2%}, padding {self.padding_waste:.2%})"
        )


@dataclass(frozen=True)
class PackingPlan:
    """Segments of documents, row by row (CSR layout).

    seg_doc, seg_start, seg_len: int64 (S,): segment s is document seg_doc[s]'s content tokens
    [seg_start[s], seg_start[s] + seg_len[s]). row_ptr: int64 (R + 1,): row r holds segments
    row_ptr[r]:row_ptr[r + 1], in order.
    """

    seq_len: int
    seg_doc: np.ndarray
    seg_start: np.ndarray
    seg_len: np.ndarray
    row_ptr: np.ndarray
    stats: PackingStats

    @property
    def num_rows(self) -> int:
        return len(self.row_ptr) - 1


def plan_rows(
    lengths: np.ndarray,
    seq_len: int,
    order: np.ndarray | None = None,
    min_segment: int = 8,
) -> PackingPlan:
    """Greedily fill rows of seq_len with documents taken in `order`.

    lengths: int (D,) content tokens per document; documents of length 0 are skipped.
    order: int (D,) document order (default 0..D-1).
    min_segment: a document is split to fill the end of a row only if at least this many of
    its tokens fit there; otherwise the row is padded and the document starts a new row
    (a 2-token fragment of a long document teaches little).
    Returns a PackingPlan; every content token lands in exactly one segment.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths.size and lengths.min() < 0):
        raise ValueError("lengths must be a 1-D array of non-negative document lengths")
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 3:
        raise ValueError(
            f"seq_len must be an int >= 3 (room for [CLS], one token and [SEP]), got {seq_len!r}"
        )
    order = np.arange(len(lengths)) if order is None else np.asarray(order, dtype=np.int64)
    cap = seq_len - _SPECIALS_PER_SEGMENT  # most content tokens one segment can hold
    min_segment = max(1, min(int(min_segment), cap))
    docs: list[int] = []
    starts: list[int] = []
    lens: list[int] = []
    row_ptr = [0]
    free = seq_len  # positions left in the open row
    for d in order.tolist():
        n = int(lengths[d])
        pos = 0
        while pos < n:
            room = free - _SPECIALS_PER_SEGMENT
            rest = n - pos
            if free < seq_len and (room < 1 or (rest > room and room < min_segment)):
                row_ptr.append(len(docs))  # close the row; the rest is padding
                free = seq_len
                continue
            if free == seq_len and rest >= 2 * cap:
                # fast path for long documents: whole rows of one segment each
                k = rest // cap - 1  # leave the remainder to the general path
                docs.extend([d] * k)
                starts.extend(range(pos, pos + k * cap, cap))
                lens.extend([cap] * k)
                row_ptr.extend(range(len(docs) - k + 1, len(docs) + 1))
                pos += k * cap
                continue
            take = min(rest, room)
            docs.append(d)
            starts.append(pos)
            lens.append(take)
            pos += take
            free -= take + _SPECIALS_PER_SEGMENT
    if free < seq_len:
        row_ptr.append(len(docs))
    seg_len = np.asarray(lens, dtype=np.int64)
    stats = PackingStats(
        seq_len=int(seq_len),
        num_rows=len(row_ptr) - 1,
        num_documents=int((lengths > 0).sum()),
        num_segments=len(docs),
        content_tokens=int(seg_len.sum()),
        special_tokens=_SPECIALS_PER_SEGMENT * len(docs),
    )
    return PackingPlan(
        seq_len=int(seq_len),
        seg_doc=np.asarray(docs, dtype=np.int64),
        seg_start=np.asarray(starts, dtype=np.int64),
        seg_len=seg_len,
        row_ptr=np.asarray(row_ptr, dtype=np.int64),
        stats=stats,
    )


def cu_seqlens_from_document_ids(document_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flash-attention style boundaries of the real tokens of a packed batch.

    document_ids: int (B, L), -1 on padding (a document appears at most once per row).
    Returns (cu_seqlens int32 (S + 1,), max_seqlen int) over the tokens
    `input_ids[document_ids >= 0]` in row-major order, S = number of segments.
    """
    ids = torch.as_tensor(document_ids)
    if ids.dim() != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"document_ids must be an integer (B, L) tensor, got {tuple(ids.shape)}")
    real = ids >= 0
    # a segment starts where a real token's row begins or its document differs from the left
    prev = torch.nn.functional.pad(ids, (1, 0), value=-1)[:, :-1]
    starts = (real & (ids != prev))[real]  # (T,) over real tokens only
    begin = torch.nonzero(starts).flatten()
    total = int(real.sum())
    cu = torch.cat([begin, torch.tensor([total])]).to(torch.int32)
    max_len = int(cu.diff().max()) if len(cu) > 1 else 0
    return cu, max_len


class PackedBatches:
    """Deterministic, seedable, resumable batches of packed rows for one rank.

    shards: TokenShards (or a prepared directory: its "train" split).
    seq_len: L, tokens per row. batch_size: B, rows per batch on this rank.
    seed: fixes the packing (document order) and every epoch's row shuffle.
    rank, world_size: rank r reads the rows r*B:(r+1)*B of each global batch of W*B rows,
    so ranks are disjoint and together cover every row once per epoch.
    start_step: global step (batches already taken by each rank) to start from.
    drop_last: False (default) fills the last global batch of an epoch with empty rows
    (all padding, sample id -1) so that every rank has the same number of steps and every
    row is seen; True drops the incomplete last batch.

    Iterating yields batches forever, epoch after epoch; each is a dict of torch tensors:
      input_ids            int64 (B, L)  [CLS] doc [SEP] [CLS] doc [SEP] ... [PAD]
      attention_mask       bool  (B, L)  True on real tokens (specials included)
      document_ids         int64 (B, L)  document index in the split, -1 on padding
      position_ids         int64 (B, L)  0, 1, ... from each segment's [CLS]; 0 on padding
      special_tokens_mask  bool  (B, L)  True on [CLS], [SEP] and padding (never corrupt)
      sample_ids           int64 (B,)    epoch * num_rows + row; -1 for empty rows
    `state_dict()` after k batches and `load_state_dict` (or `start_step=k`) resume with
    exactly the same next batches.
    """

    def __init__(
        self,
        shards: TokenShards | str | PathLike,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        drop_last: bool = False,
        min_segment: int = 8,
    ):
        if isinstance(shards, (str, PathLike)):
            shards = TokenShards(shards, "train")
        if not isinstance(shards, TokenShards):
            raise TypeError(f"shards must be TokenShards or a directory, got {type(shards).__name__}")
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1),
                                 ("seed", seed, 0), ("start_step", start_step, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) \
                or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
        self.shards = shards
        self.seq_len, self.batch_size, self.seed = int(seq_len), int(batch_size), int(seed)
        self.rank, self.world_size, self.drop_last = int(rank), int(world_size), bool(drop_last)
        self.cls_id, self.sep_id, self.pad_id = shards.cls_id, shards.sep_id, shards.pad_id

        lengths = shards.document_lengths
        order = np.random.default_rng([self.seed, 0x9ACC]).permutation(len(lengths))
        self.plan = plan_rows(lengths, self.seq_len, order, min_segment=min_segment)
        if self.plan.num_rows == 0:
            raise ValueError(f"{shards!r} has no tokens to pack")
        global_batch = self.batch_size * self.world_size
        rows = self.plan.num_rows
        self.steps_per_epoch = rows // global_batch if drop_last else -(-rows // global_batch)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{rows} packed rows make no full global batch of {global_batch} rows "
                f"(batch_size {batch_size} x world_size {world_size}); use drop_last=False, "
                "a smaller batch or more data"
            )
        self.epoch, self.step = divmod(int(start_step), self.steps_per_epoch)
        self._perm_epoch = -1
        self._perm = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------------- bookkeeping
    @property
    def num_rows(self) -> int:
        return self.plan.num_rows

    @property
    def stats(self) -> PackingStats:
        return self.plan.stats

    def _fingerprint(self) -> dict:
        return {
            "seed": self.seed, "seq_len": self.seq_len, "batch_size": self.batch_size,
            "world_size": self.world_size, "drop_last": self.drop_last,
            "num_rows": self.num_rows, "num_tokens": self.shards.num_tokens,
        }

    def state_dict(self) -> dict:
        """The data cursor: {"epoch", "step"} plus the settings that must match on resume."""
        return {"epoch": self.epoch, "step": self.step, **self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Resume at a saved cursor; refuses one saved with other data or settings."""
        mine = self._fingerprint()
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"cannot resume: the saved data cursor was made with other settings ({detail}); "
                "resume with the same data, seed, seq_len, batch_size and world_size"
            )
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch < 0 or not 0 <= step < self.steps_per_epoch:
            raise ValueError(f"bad cursor epoch={epoch}, step={step} ({self.steps_per_epoch} steps/epoch)")
        self.epoch, self.step = epoch, step

    def row_order(self, epoch: int) -> np.ndarray:
        """int64 (num_rows,): the order rows are served in this epoch (same for all ranks)."""
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_rows)
            self._perm_epoch = epoch
        return self._perm

    # ------------------------------------------------------------------------- batches
    def rows_at(self, epoch: int, step: int) -> np.ndarray:
        """int64 (B,): the plan rows this rank gets at (epoch, step); -1 for empty rows."""
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} out of range: an epoch has {self.steps_per_epoch} steps")
        first = (step * self.world_size + self.rank) * self.batch_size
        pos = np.arange(first, first + self.batch_size)
        perm = self.row_order(epoch)
        return np.where(pos < self.num_rows, perm[np.minimum(pos, self.num_rows - 1)], -1)

    def batch(self, epoch: int, step: int) -> dict[str, torch.Tensor]:
        """The batch this rank gets at (epoch, step), without moving the cursor."""
        rows = self.rows_at(epoch, step)
        b, n = self.batch_size, self.seq_len
        input_ids = np.full((b, n), self.pad_id, dtype=np.int64)
        document_ids = np.full((b, n), -1, dtype=np.int64)
        position_ids = np.zeros((b, n), dtype=np.int64)
        special = np.ones((b, n), dtype=bool)
        plan, shards = self.plan, self.shards
        for i, row in enumerate(rows.tolist()):
            if row < 0:
                continue
            c = 0
            for s in range(plan.row_ptr[row], plan.row_ptr[row + 1]):
                doc, start, length = int(plan.seg_doc[s]), int(plan.seg_start[s]), int(plan.seg_len[s])
                end = c + length + 2
                input_ids[i, c] = self.cls_id
                input_ids[i, c + 1:end - 1] = shards[doc][start:start + length]
                input_ids[i, end - 1] = self.sep_id
                document_ids[i, c:end] = doc
                position_ids[i, c:end] = np.arange(length + 2)
                special[i, c + 1:end - 1] = False
                c = end
        sample_ids = np.where(rows >= 0, epoch * self.num_rows + rows, -1)
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(document_ids >= 0),
            "document_ids": torch.from_numpy(document_ids),
            "position_ids": torch.from_numpy(position_ids),
            "special_tokens_mask": torch.from_numpy(special),
            "sample_ids": torch.from_numpy(sample_ids.astype(np.int64)),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            out = self.batch(self.epoch, self.step)
            self.step += 1
            if self.step == self.steps_per_epoch:
                self.epoch, self.step = self.epoch + 1, 0
            yield out

    def epoch_batches(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """All of this rank's batches of one epoch, without moving the cursor."""
        for step in range(self.steps_per_epoch):
            yield self.batch(epoch, step)

    def __repr__(self) -> str:
        return (
            f"PackedBatches(seq_len={self.seq_len}, batch_size={self.batch_size}, "
            f"rank={self.rank}/{self.world_size}, {self.num_rows} rows, "
            f"{self.steps_per_epoch} steps/epoch, cursor epoch {self.epoch} step {self.step})"
        )
