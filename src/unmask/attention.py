"""Scaled dot-product attention under a boolean mask: one function, four kernels.

Axes: B batch, H heads, Q queries, K keys, D head dim; nq / nk query / key blocks, bq / bk their
sizes, m the most key blocks any query block needs.
Mask convention: boolean, True = may attend, broadcastable to (B, H, Q, K) (see unmask.masks).
A query row with no allowed key returns zeros, never NaN, in every kernel and dtype: one guard,
`_open_empty_rows`, lets such rows see every key (so no softmax divides by zero) and their
outputs are zeroed afterwards.

Kernels (`backend=`; same inputs, same result up to rounding):
  "eager"   written out: softmax(QK^T * scale + bias + M) V with the scores materialised
            (B, H, Q, K). The reference; also the only kernel that returns probabilities, and
            the one CPU training runs for "sdpa" up to L = 512, where it is faster than torch's
            SDPA backward (benchmarks/RESULTS.md).
  "sdpa"    torch's fused scaled_dot_product_attention. The default.
  "sparse"  block-sparse: per query block, gathers only the key blocks the mask allows and
            attends over those; work and memory scale with the allowed blocks, not Q * K.
            Pays off for local / block-sparse masks on long sequences; for dense masks it only
            adds gathering.
  "flex"    torch FlexAttention (torch >= 2.5) with a BlockMask built from the mask:
            torch.compile'd on CUDA (the fused, block-skipping kernel), uncompiled on CPU by
            default (see attention_flex). torch has no flex backward on CPU: inference only.
`attention` also takes a score `bias` (relative positions, ALiBi, DeBERTa's disentangled terms),
`scale`, `dropout_p` and `return_probs`; with dropout, "sparse" / "flex" (which have none) run
as "sdpa".
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F

from unmask.dropout import dropout
from unmask.masks import Mask, check_broadcast, require_flex, resolve

BACKENDS = ("eager", "sdpa", "sparse", "flex")

# CPU training runs "sdpa" written out up to this many queries (its backward is faster there).
_WRITTEN_OUT_MAX_LEN = 512


def attention(q, k, v, mask=None, backend: str = "sdpa", *, bias: torch.Tensor | None = None,
              scale: float | None = None, dropout_p: float = 0.0, return_probs: bool = False):
    """Attention with the chosen kernel: "eager", "sdpa" (default), "sparse" or "flex".

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv), one float dtype.
    mask: `unmask.masks.Mask`, bool tensor broadcastable to (B, H, Q, K) (True = may attend),
        a FlexAttention BlockMask (backend "flex" only), or None (all pairs attend).
    bias: float tensor broadcastable to (B, H, Q, K), added to the scaled scores before the
        mask ("eager" and "sdpa").
    scale: multiplies QK^T; default 1 / sqrt(D).
    dropout_p: dropout on the probabilities (pass 0 outside training).
    return_probs: also return the probabilities (written out, whatever the backend).
    Returns (B, H, Q, Dv) in q's dtype, or (output, probabilities (B, H, Q, K)) with
    return_probs. A query with no allowed key outputs zeros (and all-zero probabilities).
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1), got {dropout_p!r}")
    if backend in ("sparse", "flex") and bias is not None:
        raise ValueError(f"backend {backend!r} takes no score bias; use 'sdpa' or 'eager'")
    if backend in ("sparse", "flex") and not (dropout_p or return_probs):
        fn = attention_sparse if backend == "sparse" else attention_flex
        return fn(q, k, v, mask, scale=scale)
    _check_qkv(q, k, v)
    allowed = resolve(mask, (*q.shape[:3], k.shape[2]), q.device)
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or not bias.is_floating_point():
            raise TypeError(f"bias must be a float tensor, got {type(bias).__name__}")
        check_broadcast(bias.shape, (*q.shape[:3], k.shape[2]), what="score bias")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if backend == "eager" or return_probs or (
            q.device.type == "cpu" and q.requires_grad and torch.is_grad_enabled()
            and q.shape[-2] <= _WRITTEN_OUT_MAX_LEN):
        out, probs = _written_out(q, k, v, allowed, bias, scale, dropout_p)
        return (out, probs) if return_probs else out
    return _sdpa(q, k, v, allowed, bias, scale, dropout_p)


# --- the guard and the two dense kernels ----------------------------------------------------

def _open_empty_rows(
        allowed: torch.Tensor | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The guard for queries with no allowed key. allowed: bool (..., Q, K), or None.

    Returns (allowed, empty): empty is bool (..., Q, 1), True for such rows, or None when there
    are none; the returned mask lets those rows see every key, so that no softmax is over
    nothing (NaN). Callers zero those rows' outputs: `out.masked_fill(empty, 0.0)`.
    """
    if allowed is None:
        return None, None
    empty = ~allowed.any(dim=-1, keepdim=True)
    if not bool(empty.any()):
        return allowed, None
    return allowed | empty, empty


def _written_out(q, k, v, allowed, bias, scale: float, dropout_p: float):
    """softmax(QK^T * scale + bias + M) V with unmask's dropout; returns (output, probs)."""
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, Q, K)
    if bias is not None:
        scores = scores + bias
    allowed, empty = _open_empty_rows(allowed)
    if allowed is not None:
        scores = scores + Mask(allowed).to_additive(scores.dtype)
    # torch's softmax accumulates in float32 for fp16 / bf16 inputs: no overflow.
    probs = torch.softmax(scores, dim=-1)
    if empty is not None:
        probs = probs.masked_fill(empty, 0.0)  # empty rows: zero weights, so zero output
    probs = dropout(probs, dropout_p)
    return probs @ v, probs  # (B, H, Q, Dv), (B, H, Q, K)


def _sdpa(q, k, v, allowed, bias=None, scale=None, dropout_p: float = 0.0) -> torch.Tensor:
    """torch's SDPA over any leading axes (..., L, D), with the guard; allowed may be None."""
    attn_mask, empty = _open_empty_rows(allowed)
    if bias is not None:
        bias = bias.to(q.dtype)
        attn_mask = bias if attn_mask is None else bias + Mask(attn_mask).to_additive(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                         scale=scale)
    return out if empty is None else out.masked_fill(empty, 0.0)


# --- input checks -------------------------------------------------------------------------

def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"{name} must be a 4-D (B, H, L, D) tensor, got {shape}; split heads first, "
                "e.g. x.view(B, L, H, D).transpose(1, 2)"
            )
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit together: "
            "expected q (B, H, Q, D), k (B, H, K, D), v (B, H, K, Dv)"
        )


# --- block-sparse ---------------------------------------------------------------------------

def attention_sparse(q, k, v, mask=None, *, block_size: int = 64,
                     scale: float | None = None) -> torch.Tensor:
    """Block-sparse attention: only the key blocks the mask touches are read.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv); mask as in `attention`.
    block_size: query and key block length. Smaller blocks skip more of a thin pattern (a
        sliding window) but make more, smaller matmuls; 64 suits windows of ~128 and more.
    Returns (B, H, Q, Dv) in q's dtype, equal to `attention(..., backend="eager")` up to
    float rounding.

    How: cut queries and keys into blocks; from the mask, list per query block the key blocks
    with any allowed entry (padded to the largest count m with masked-out slots); gather those
    K / V blocks into (B, H, nq, m * bk, D) and run one batched masked SDPA over the query
    blocks, chunk by chunk (see _GATHER_BYTES). Cost ~ Q * m * bk instead of Q * K.
    """
    _check_qkv(q, k, v)
    allowed = resolve(mask, (*q.shape[:3], k.shape[2]), q.device)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)  # nothing to skip
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    bsz, heads, q_len, dim = q.shape
    k_len, dim_v = k.shape[2], v.shape[-1]
    bq = bk = block_size
    nq, nk = math.ceil(q_len / bq), math.ceil(k_len / bk)
    mb, mh = allowed.shape[:2]  # the mask may broadcast over batch / heads: keep it that way

    # Pad to whole blocks; padded keys are masked out, padded queries are dropped at the end.
    allowed = allowed.expand(mb, mh, q_len, k_len)
    if nq * bq != q_len or nk * bk != k_len:
        allowed = F.pad(allowed, (0, nk * bk - k_len, 0, nq * bq - q_len))
    allowed = allowed.contiguous()  # no copy for an already dense (mb, mh, Q, K) mask
    used = _blocks_used(allowed, bq, bk)  # (mb, mh, nq, nk): key block has an allowed entry
    counts = used.sum(dim=-1)  # (mb, mh, nq)
    m = int(counts.max())
    if m == 0:
        return q.new_zeros(bsz, heads, q_len, dim_v)
    # Used key blocks first, in ascending order (stable sort), then the rest; keep m per row.
    order = torch.argsort(used.to(torch.int8), dim=-1, descending=True, stable=True)[..., :m]
    slot_ok = torch.arange(m, device=q.device) < counts[..., None]  # (mb, mh, nq, m)

    # Mask entries of the chosen blocks: (mb, mh, nq, m, bq, bk) -> (mb, mh, nq, bq, m * bk).
    tiles = allowed.view(mb, mh, nq, bq, nk, bk).transpose(3, 4)  # (mb, mh, nq, nk, bq, bk)
    sub_mask = torch.take_along_dim(tiles, order[..., None, None], 3) & slot_ok[..., None, None]
    sub_mask = sub_mask.transpose(3, 4).reshape(mb, mh, nq, bq, m * bk)

    # Key blocks each query block needs, as rows of a flat (B*H*nk, bk*d) table of K or V.
    rows = torch.arange(bsz * heads, device=q.device).view(bsz, heads, 1, 1) * nk + order
    rows = rows.reshape(bsz * heads, nq * m)
    k_table, v_table = (_pad_rows(x, nk * bk).reshape(bsz * heads * nk, -1) for x in (k, v))

    q_blocks = _pad_rows(q, nq * bq).reshape(bsz * heads, nq, bq, dim)
    if mb == 1 and mh == 1:
        sub_mask = sub_mask[0]  # (1, nq, bq, m*bk) broadcasts over B*H
    else:
        sub_mask = sub_mask.expand(bsz, heads, nq, bq, m * bk).reshape(bsz * heads, nq, bq, -1)
    per_block = bsz * heads * m * bk * (dim + dim_v) * k.element_size()
    chunk = max(1, _GATHER_BYTES // per_block)
    out = q.new_empty(bsz * heads, nq, bq, dim_v)
    for c in range(0, nq, chunk):
        idx = rows[:, c * m:(c + chunk) * m].reshape(-1)  # (B*H*n*m,) for n query blocks
        n = min(chunk, nq - c)
        kb = k_table.index_select(0, idx).view(bsz * heads, n, m * bk, dim)
        vb = v_table.index_select(0, idx).view(bsz * heads, n, m * bk, dim_v)
        # One batched SDPA per chunk, 4-D so torch picks its fused kernel. A row's allowed
        # keys all lie in its gathered blocks, so the guard sees the same empty rows.
        out[:, c:c + n] = _sdpa(q_blocks[:, c:c + n], kb, vb, sub_mask[:, c:c + n], scale=scale)
    return out.reshape(bsz, heads, nq * bq, dim_v)[:, :, :q_len]


def _pad_rows(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, L, d) -> (B, H, length, d), zeros appended; x itself (no copy) if L == length."""
    return x if x.shape[2] == length else F.pad(x, (0, 0, 0, length - x.shape[2]))


def _blocks_used(allowed: torch.Tensor, bq: int, bk: int) -> torch.Tensor:
    """(mb, mh, nq*bq, nk*bk) contiguous bool -> (mb, mh, nq, nk): block has any True."""
    mb, mh, qp, kp = allowed.shape
    nq, nk = qp // bq, kp // bk
    if bk % 8 == 0 and allowed.storage_offset() % 8 == 0:
        # Read 8 bools as one int64 word: a reduction over 8x fewer elements. The bytes are
        # 0/1, so a word is > 0 iff any of its 8 bools is True.
        words = allowed.view(torch.int64).view(mb, mh, nq, bq, nk, bk // 8)
        return words.amax(dim=-1).amax(dim=3) > 0
    return allowed.view(mb, mh, nq, bq, nk, bk).any(dim=-1).any(dim=3)


# Most bytes of gathered K and V blocks held at once by attention_sparse (per chunk of query
# blocks): all at once would cost m times the memory of K and V. Each extra chunk costs speed,
# so the bound is loose: one chunk at L=4096 with blocks of 64.
_GATHER_BYTES = 64 * 2**20


# --- FlexAttention --------------------------------------------------------------------------

# Compiled CPU flex (torch 2.13): static shapes (dynamic ones hit C++ errors), padded to this tile.
_CPU_FLEX_TILE = 128


@functools.cache
def _compiled_flex(on_cuda: bool):
    dynamic = None if on_cuda else False  # None: torch's default (dynamic after a recompile)
    return torch.compile(require_flex().flex_attention, dynamic=dynamic)


def attention_flex(q, k, v, mask=None, *, block_size: int = 128, compile: bool | None = None,
                   scale: float | None = None) -> torch.Tensor:
    """FlexAttention (torch >= 2.5) under the same mask convention.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, D); mask: `Mask`, bool tensor broadcastable to
        (B, H, Q, K), a ready FlexAttention `BlockMask` (build it once with
        `Mask.to_block_mask(...)` and reuse it across layers), or None.
    block_size: tile size of the BlockMask built from a Mask / bool tensor.
    compile: run torch.compile(flex_attention), the fused kernel that skips masked tiles.
        Default: True on CUDA, False elsewhere. Uncompiled flex is torch's reference path: it
        materialises the (B, H, Q, K) scores and is slow. compile=True on CPU is fast per call
        but compiles once per new shape; Q and K are then padded to whole 128-tiles, because
        this torch's CPU kernel returned wrong values for other lengths. Prefer "sparse" on CPU.
    Returns (B, H, Q, D) in q's dtype; rows with no allowed key are zeros (flex's own rule).
    Raises RuntimeError when this torch has no FlexAttention, NotImplementedError for a backward
    pass on CPU (torch has none).
    """
    flex = require_flex()
    _check_qkv(q, k, v)
    if not q.is_cuda and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise NotImplementedError(
            "FlexAttention has no backward pass on CPU in torch; train on CPU with "
            "backend='sdpa' or 'sparse', or run flex under torch.no_grad() for inference"
        )
    if not torch.is_grad_enabled():
        # torch's CPU check looks at requires_grad even under no_grad, where no graph is built.
        q, k, v = q.detach(), k.detach(), v.detach()
    if compile is None:
        compile = q.is_cuda
    q_len, k_len = q.shape[2], k.shape[2]
    pad_tiles = compile and not q.is_cuda
    if isinstance(mask, flex.BlockMask):
        if pad_tiles and (q_len % _CPU_FLEX_TILE or k_len % _CPU_FLEX_TILE):
            raise ValueError(
                f"compiled flex on CPU needs Q and K in multiples of {_CPU_FLEX_TILE} (got "
                f"{q_len}, {k_len}) when given a ready BlockMask; pass the Mask instead and "
                "unmask pads the sequences for you"
            )
        block_mask = mask
    else:
        allowed = resolve(mask, (*q.shape[:3], k.shape[2]), q.device)
        if pad_tiles:
            multiple = math.lcm(block_size, _CPU_FLEX_TILE)
            q_pad, k_pad = -q_len % multiple, -k_len % multiple
            if allowed is None and k_pad:
                allowed = torch.ones(1, 1, 1, k_len, dtype=torch.bool, device=q.device)
            if allowed is not None:  # padded keys: never allowed; padded queries: dropped below
                mb, mh = allowed.shape[:2]
                allowed = F.pad(allowed.expand(mb, mh, q_len, k_len), (0, k_pad, 0, q_pad))
            q = F.pad(q, (0, 0, 0, q_pad))
            k, v = F.pad(k, (0, 0, 0, k_pad)), F.pad(v, (0, 0, 0, k_pad))
        block_mask = (
            None if allowed is None
            else Mask(allowed).to_block_mask(block_size, q_len=q.shape[2])
        )
    if compile:
        out = _compiled_flex(q.is_cuda)(q, k, v, block_mask=block_mask, scale=scale)
    else:
        with warnings.catch_warnings():
            # Uncompiled flex warns that it materialises the scores: that is the documented choice.
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch")
            out = flex.flex_attention(q, k, v, block_mask=block_mask, scale=scale)
    return out[:, :, :q_len]


__all__ = ["BACKENDS", "attention", "attention_flex", "attention_sparse"]
