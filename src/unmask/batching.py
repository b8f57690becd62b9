"""Length-sorted batches under a token budget, for inference over many rows.

Rows are sorted by length and cut so that B x L <= batch_tokens: a batch holds rows of similar
length (little padding), and memory stays bounded however long the inputs. Used by
Embedder.encode and every pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    """One padded batch of rows, sorted by length.

    index: int64 (B,) positions of these rows in the caller's list.
    input_ids, token_type_ids: int64 (B, L). attention_mask: bool (B, L), True = real token.
    lengths: int64 (B,) real tokens per row.
    """

    index: np.ndarray
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    lengths: np.ndarray


def batches(rows: Sequence[Sequence[int]], batch_tokens: int, pad_id: int,
            types: Sequence[Sequence[int]] | None = None,
            device: torch.device | str = "cpu") -> Iterator[Batch]:
    """Cut N rows of token ids into length-sorted batches of at most batch_tokens (B x L).

    A row longer than batch_tokens still gets a batch of its own (budgets bound memory, they
    never drop text). types: token type ids per row (None = zeros).
    """
    n = len(rows)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and (stop - start + 1) * int(lengths[order[stop]]) <= batch_tokens:
            stop += 1
        index = order[start:stop]
        width = int(lengths[index[-1]])
        ids = np.full((len(index), width), pad_id, dtype=np.int64)
        tt = np.zeros((len(index), width), dtype=np.int64)
        for i, r in enumerate(index):
            ids[i, : lengths[r]] = rows[r]
            if types is not None:
                tt[i, : lengths[r]] = types[r]
        mask = np.arange(width)[None, :] < lengths[index][:, None]
        yield Batch(index, torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device),
                    torch.from_numpy(tt).to(device), lengths[index])
        start = stop
