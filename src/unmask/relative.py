"""DeBERTa's disentangled attention: the relative-position terms added to BERT's scores.

Axes: B batch, nh heads, Q queries, K keys (Q = K = L in self-attention), hd head dim,
R = 2 * span rows of the relative-embedding table (span = position_buckets, or
max_relative_positions without buckets).

BERT scores a query i against a key j with q_i . k_j / sqrt(hd). DeBERTa (He et al. 2021) adds
two terms that look at the relative distance d = pos_i - pos_j through a table of relative
embeddings P (R, H), projected per layer by the key and query projections:

    content-to-position  c2p[i, j] = q_i . Pk[idx(i, j)]      (Pk = P projected like keys)
    position-to-content  p2c[i, j] = k_j . Pq[idx(i, j)]      (Pq = P projected like queries)
    idx(i, j)            = clamp(bucket(pos_i - pos_j) + span, 0, R - 1)

and divides all three terms by sqrt(hd * (1 + number of position terms)). Everything else in the
block is BERT's, so the encoder only needs `relative_bias` as an additive score bias.
Relative distances come from position ids, so a packed row's documents each count from 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from unmask.config import EncoderConfig
from unmask.dropout import Dropout


def log_buckets(distance: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """DeBERTa-v3's log buckets: |d| < buckets // 2 kept as is, longer distances compressed
    logarithmically so that max_position maps near buckets - 1 (sign kept).

    distance: int64 (...). Returns int64 (...), the same arithmetic as transformers'
    make_log_bucket_position.
    """
    sign = torch.sign(distance)
    mid = buckets // 2
    near = (distance < mid) & (distance > -mid)
    magnitude = torch.where(near, torch.full_like(distance, mid - 1), distance.abs())
    log_pos = torch.ceil(
        torch.log(magnitude / mid) / math.log((max_position - 1) / mid) * (mid - 1)
    ) + mid
    return torch.where(magnitude <= mid, distance.to(log_pos.dtype), log_pos * sign).long()


def relative_index(position_ids: torch.Tensor, span: int, buckets: int = 0,
                   max_position: int = 0) -> torch.Tensor:
    """Row of the relative table that query i uses for key j.

    position_ids: int64 (B, L) or (L,). buckets / max_position: log-bucket settings (0 = plain
    distances). Returns int64 (B|1, L, L) in [0, 2 * span).
    """
    pos = position_ids if position_ids.dim() == 2 else position_ids[None]  # (B|1, L)
    distance = pos[:, :, None] - pos[:, None, :]  # (B|1, Q, K): pos_i - pos_j
    if buckets > 0 and max_position > 0:
        distance = log_buckets(distance, buckets, max_position)
    return (distance + span).clamp_(0, 2 * span - 1)


def relative_bias(q: torch.Tensor, k: torch.Tensor, index: torch.Tensor,
                  pos_k: torch.Tensor | None, pos_q: torch.Tensor | None,
                  scale: float) -> torch.Tensor:
    """The c2p and p2c terms as one additive score bias.

    q, k: (B, nh, L, hd) content queries and keys. index: (B|1, L, L) from relative_index.
    pos_k, pos_q: (nh, R, hd) the relative table projected as keys (c2p) / queries (p2c), or
    None where that term is off. scale: 1 / sqrt(hd * (1 + number of terms)).
    Returns (B, nh, L, L) in q's dtype.
    """
    b, nh, n, _ = q.shape
    gather_at = index[:, None].expand(b, nh, n, n)  # (B, nh, Q, K)
    bias = None
    if pos_k is not None:
        c2p = q @ pos_k.transpose(-1, -2)  # (B, nh, Q, R): every query against every distance
        bias = torch.gather(c2p, -1, gather_at)  # (B, nh, Q, K)
    if pos_q is not None:
        p2c = k @ pos_q.transpose(-1, -2)  # (B, nh, K, R): every key against every distance
        # p2c[i, j] = k_j . Pq[idx(i, j)]: gather along the distances of key j, then swap axes.
        term = torch.gather(p2c, -1, gather_at.transpose(-1, -2)).transpose(-1, -2)
        bias = term if bias is None else bias + term
    return bias * scale


class RelativeTable(nn.Module):
    """The encoder's relative embeddings, (2 * span, H), with DeBERTa-v3's optional LayerNorm.

    Each block projects them (SelfAttention.project_relative) into its own Pk / Pq.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.table = nn.Embedding(2 * cfg.relative_span, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) \
            if cfg.relative_norm else None
        self.drop = Dropout(cfg.hidden_dropout)

    def forward(self) -> torch.Tensor:
        """Returns (R, H) float."""
        t = self.table.weight
        return self.drop(self.norm(t) if self.norm is not None else t)


class ConvLayer(nn.Module):
    """DeBERTa-v2's convolution beside the first layer: a 1-D convolution over the embeddings
    (kernel k, "same" padding), activation, added to layer 0's output, LayerNorm.

    Written as k shifted matmuls so that a token's window stops at its document's edge (told
    by position ids that do not step by one), as it stops at the row's edge: packed documents
    convolve as if alone. Needs whole rows: the unpadded layout restores (B, L, H) around it.
    """

    def __init__(self, cfg: EncoderConfig, act: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        k = cfg.conv_kernel_size
        self.conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, k, padding=(k - 1) // 2)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.drop = Dropout(cfg.hidden_dropout)
        self.act = act

    def forward(self, embedded: torch.Tensor, x: torch.Tensor, real: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        """embedded, x: (B, L, H) the embeddings and layer 0's output; real: bool (B, L, 1);
        positions: int64 (B|1, L). Returns (B, L, H), zeros at padding."""
        b, n, _ = x.shape
        embedded = embedded.masked_fill(~real, 0.0)  # padding must not leak into neighbours
        pos = positions.expand(b, n)
        half = (self.conv.kernel_size[0] - 1) // 2
        out = self.conv.bias
        for j in range(self.conv.kernel_size[0]):
            o = j - half  # this tap reads token i + o
            lo, hi = max(o, 0), n + min(o, 0)  # queries i with i + o inside the row: [lo - o, hi - o)
            src = embedded.new_zeros(b, n, embedded.shape[-1])
            src[:, lo - o:hi - o] = embedded[:, lo:hi]
            same = torch.zeros(b, n, 1, dtype=torch.bool, device=x.device)
            same[:, lo - o:hi - o, 0] = pos[:, lo:hi] - pos[:, lo - o:hi - o] == o
            out = out + (src * same) @ self.conv.weight[:, :, j].T  # (B, L, H)
        out = self.act(self.drop(out.masked_fill(~real, 0.0)))
        return self.norm(x + out) * real
