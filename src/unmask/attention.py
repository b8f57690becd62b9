"""Scaled dot-product attention under a boolean mask.

Axes: B batch, H heads, Q queries, K keys, D head dim.
Mask convention: boolean, True = may attend, broadcastable to (B, H, Q, K).
A query row with no allowed key returns zeros, never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _as_bool(mask) -> torch.Tensor | None:
    """Accept a `unmask.masks.Mask`, a bool tensor, or None."""
    if mask is None:
        return None
    tensor = getattr(mask, "allowed", mask)
    if tensor.dtype != torch.bool:
        raise TypeError(f"attention mask must be boolean (True = may attend), got {tensor.dtype}")
    return tensor


def attention_eager(q, k, v, mask=None) -> torch.Tensor:
    """Reference softmax(QK^T / sqrt(D) + M) V.

    q: (B, H, Q, D), k and v: (B, H, K, D), mask: bool broadcastable to (B, H, Q, K).
    Returns (B, H, Q, D) in q's dtype.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Q, K)
    allowed = _as_bool(mask)
    if allowed is None:
        return torch.softmax(scores, dim=-1) @ v
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)  # rows with every key masked: 0/0 -> zeros
    return weights @ v


def attention_sdpa(q, k, v, mask=None) -> torch.Tensor:
    """Same result as `attention_eager`, on torch's fused scaled_dot_product_attention.

    q: (B, H, Q, D), k and v: (B, H, K, D), mask: bool broadcastable to (B, H, Q, K).
    """
    allowed = _as_bool(mask)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v)
    has_key = allowed.any(dim=-1, keepdim=True)  # (B|1, H|1, Q, 1)
    # SDPA returns NaN for a row with no allowed key; let such rows see everything, then zero them.
    safe = allowed | ~has_key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe)
    return out.masked_fill(~has_key, 0.0)


def attention(q, k, v, mask=None, backend: str = "sdpa") -> torch.Tensor:
    """Dispatch to an attention backend ("eager" or "sdpa"). Shapes as `attention_eager`."""
    if backend == "eager":
        return attention_eager(q, k, v, mask)
    if backend == "sdpa":
        return attention_sdpa(q, k, v, mask)
    raise ValueError(f"unknown attention backend {backend!r}; choose 'eager' or 'sdpa'")
