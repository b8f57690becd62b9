"""Sentence embeddings and cosine similarity, pooled as the checkpoint says.

A sentence-transformers checkpoint names its pooling (mean / cls / max), normalisation and
max_seq_length; unmask.checkpoints reads them into the Embedder. Texts longer than that
length are not cut: they are split into overlapping windows, each window pooled, and the
window vectors averaged with weights equal to their token counts (then normalised again).
truncate=True instead keeps only the first window, exactly as sentence-transformers does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from unmask.heads import pool
from unmask.pipelines.base import Batch, Pipeline, as_list, window_mean


class Embed(Pipeline):
    """embed(texts) -> float32 tensor (N, H); one text -> (H,)."""

    task = "embedding"

    def __init__(self, *args, truncate: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.truncate, self.normalize = truncate, self.model.normalize
        if self.model.max_length:
            self.max_length = min(self.max_length, self.model.max_length)

    def pooled(self, batch: Batch) -> torch.Tensor:
        """Pooled, not yet normalised vectors float32 (B, H) of one batch of rows."""
        hidden = self.encode(batch).float()  # (B, L, H); bf16 sums lose digits, so fp32
        return pool(hidden, batch.attention_mask, self.model.pooling)

    def __call__(self, inputs: str | Sequence[str]) -> torch.Tensor:
        texts, single = as_list(inputs)
        windows = not self.truncate
        enc = self.tokens(texts, max_length=self.max_length, return_overflowing=windows,
                          stride=self.max_length // 4 if windows else 0)
        vectors = torch.stack(self.run(enc.input_ids,
                                       lambda batch: list(self.pooled(batch).cpu())))  # (rows, H)
        counts = torch.tensor([len(r) for r in enc.input_ids], dtype=torch.float32)
        out = window_mean(vectors, enc.overflow_to_sample_mapping, len(texts), counts)
        if self.normalize:
            out = F.normalize(out, dim=-1)
        return out[0] if single else out


class Similarity(Embed):
    """similarity(a, b=None) -> cosine similarities float32 (N, M); (N, N) among a when b is
    None; a float when a and b are single texts."""

    def __call__(self, a: str | Sequence[str], b: str | Sequence[str] | None = None):
        both_single = isinstance(a, str) and isinstance(b, str)
        ea = F.normalize(super().__call__(as_list(a)[0]), dim=-1)
        eb = ea if b is None else F.normalize(super().__call__(as_list(b)[0]), dim=-1)
        sims = ea @ eb.T
        return float(sims[0, 0]) if both_single else sims
