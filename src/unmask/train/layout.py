"""Packed rows -> one row per document segment, so no token ever attends across documents.

Axes: B packed rows, L their length, S segments in the batch, M the longest segment.

PackedBatches fills each row of L tokens with several documents ([CLS] doc [SEP] [CLS] doc
[SEP] ...). Rather than a (B, 1, L, L) document mask, the training step cuts the rows at the
document boundaries into a right-padded (S, M) batch of segments and runs the encoder's
"unpadded" backend on it: padding is dropped before the first layer, every linear layer sees
only real tokens, and attention runs per segment, batched by equal length. This is the
flash-attention varlen layout (cu_seqlens) expressed with what the encoder already takes.
Segments are sorted by length so that each length bucket is a contiguous slice (no gather).
"""

from __future__ import annotations

import torch


def segment_index(attention_mask: torch.Tensor, position_ids: torch.Tensor):
    """Where each real token of a packed batch goes in the segment layout.

    attention_mask: bool (B, L), True on real tokens. position_ids: int64 (B, L), restarting
    at 0 at each segment's [CLS] (as PackedBatches gives them).
    Returns (flat, seg, pos, lengths): flat int64 (T,) flat index into B * L of each real
    token (row-major), seg int64 (T,) its segment row after sorting by length, pos int64 (T,)
    its column there, lengths int64 (S,) sorted segment lengths (ascending).
    """
    real = attention_mask.reshape(-1)
    flat = real.nonzero().squeeze(1)  # (T,)
    pos = position_ids.reshape(-1)[flat]  # (T,)
    seg = torch.cumsum((pos == 0).long(), 0) - 1  # (T,) segment in packed order
    lengths = torch.bincount(seg)  # (S,)
    order = torch.argsort(lengths, stable=True)  # sorted row -> packed segment
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)  # packed segment -> sorted row
    return flat, rank[seg], pos, lengths[order]


def to_segments(tensors: dict[str, torch.Tensor], attention_mask: torch.Tensor,
                position_ids: torch.Tensor, fill: dict[str, int]) -> dict[str, torch.Tensor]:
    """Re-lay (B, L) tensors as (S, M) segment rows.

    tensors: name -> (B, L) tensor to move (e.g. input_ids, labels). fill: name -> value for
    the padding of the new layout (pad id, -100). Returns the moved tensors plus
    attention_mask bool (S, M) and position_ids int64 (S, M).
    """
    flat, seg, pos, lengths = segment_index(attention_mask, position_ids)
    s, m = len(lengths), int(lengths.max()) if len(lengths) else 1
    out = {}
    for name, t in tensors.items():
        grid = t.new_full((s, m), fill[name])
        grid[seg, pos] = t.reshape(-1)[flat]
        out[name] = grid
    columns = torch.arange(m, device=lengths.device)[None, :]  # (1, M)
    out["attention_mask"] = columns < lengths[:, None]
    out["position_ids"] = torch.where(out["attention_mask"], columns, 0)
    return out


__all__ = ["segment_index", "to_segments"]
