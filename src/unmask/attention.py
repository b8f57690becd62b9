"""Scaled dot-product attention under a boolean mask, four interchangeable backends.

Axes: B batch, H heads, Q queries, K keys, D head dim; nq / nk query / key blocks, bq / bk their
sizes, m the most key blocks any query block needs.
Mask convention: boolean, True = may attend, broadcastable to (B, H, Q, K) (see unmask.masks).
A query row with no allowed key returns zeros, never NaN, in every backend and dtype.

Backends (same inputs, same result):
  "eager"   the reference softmax(QK^T / sqrt(D) + M) V, scores materialised (B, H, Q, K).
  "sdpa"    torch's fused scaled_dot_product_attention with a bool mask. Default.
  "sparse"  block-sparse: per query block, gathers only the key blocks the mask allows and
            attends over those; work and memory scale with the allowed blocks, not Q * K.
            Pays off for local / block-sparse masks on long sequences (see
            benchmarks/bench_sliding_window.py); for dense masks it only adds gathering.
  "flex"    torch FlexAttention (torch >= 2.5) with a BlockMask built from the mask. On CUDA it
            runs torch.compile'd (the fused, block-skipping kernel). On CPU it runs uncompiled
            by default, i.e. flex's slow reference path that materialises the scores, because
            compiling costs 10-20 s per new shape on a small CPU and this torch's compiled CPU
            kernel is wrong for lengths off its 128 tile. attention_flex(..., compile=True)
            compiles anyway (padding to whole tiles); on CPU "sparse" is the fast choice.
            torch has no flex backward on CPU: there it is for inference only.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from unmask.masks import Mask, check_broadcast, require_flex

BACKENDS = ("eager", "sdpa", "sparse", "flex")


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


def _resolve_mask(mask, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
    """Mask / bool tensor / None -> bool tensor broadcastable to (B, H, Q, K), or None."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        raise TypeError(
            f"attention mask must be boolean (True = may attend), got {mask.dtype}. Convert a "
            "Hugging Face mask with unmask.masks.from_hf(...) or unmask.masks.padding(...)."
        )
    allowed = Mask(mask).allowed  # promotes (Q, K) to (1, 1, Q, K), refuses other shapes
    check_broadcast(allowed.shape, (q.shape[0], q.shape[1], q.shape[2], k.shape[2]))
    return allowed.to(q.device)


def _sdpa_guarded(q, k, v, allowed: torch.Tensor) -> torch.Tensor:
    """SDPA over any leading axes (..., L, D) with the empty-row guard."""
    has_key = allowed.any(dim=-1, keepdim=True)  # (..., Q, 1)
    if bool(has_key.all()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    # Some SDPA kernels return NaN for a row with no allowed key: let such rows see every key,
    # then zero their output.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | ~has_key)
    return out.masked_fill(~has_key, 0.0)


# --- backends -----------------------------------------------------------------------------

def attention_eager(q, k, v, mask=None) -> torch.Tensor:
    """Reference softmax(QK^T / sqrt(D) + M) V, written out.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv), any float dtype.
    mask: `Mask`, bool tensor broadcastable to (B, H, Q, K) (True = may attend), or None.
    Returns (B, H, Q, Dv) in q's dtype. The softmax runs in float32 (no fp16/bf16 overflow).
    """
    _check_qkv(q, k, v)
    allowed = _resolve_mask(mask, q, k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Q, K)
    if allowed is None:
        return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
    has_key = allowed.any(dim=-1, keepdim=True)  # (B|1, H|1, Q|1, 1)
    # -inf where masked; rows with no allowed key get 0s instead, so softmax stays finite.
    scores = scores.masked_fill(~allowed, float("-inf")).masked_fill(~has_key, 0.0)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).masked_fill(~has_key, 0.0)
    return weights.to(q.dtype) @ v


def attention_sdpa(q, k, v, mask=None) -> torch.Tensor:
    """Same result as `attention_eager`, on torch's fused scaled_dot_product_attention.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv); mask as in `attention_eager`.
    Returns (B, H, Q, Dv) in q's dtype.
    """
    _check_qkv(q, k, v)
    allowed = _resolve_mask(mask, q, k)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v)
    return _sdpa_guarded(q, k, v, allowed)


def attention_sparse(q, k, v, mask=None, *, block_size: int = 64) -> torch.Tensor:
    """Block-sparse attention: only the key blocks the mask touches are read.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv); mask as in `attention_eager`.
    block_size: query and key block length. Smaller blocks skip more of a thin pattern (a
        sliding window) but make more, smaller matmuls; 64 suits windows of ~128 and more.
    Returns (B, H, Q, Dv) in q's dtype, equal to `attention_eager` up to float rounding.

    How: cut queries and keys into blocks; from the mask, list per query block the key blocks
    with any allowed entry (padded to the largest count m with masked-out slots); gather those
    K / V blocks into (B, H, nq, m * bk, D) and run one batched masked SDPA over the query
    blocks, in chunks that keep the gathered K / V under 64 MiB. Cost ~ Q * m * bk instead
    of Q * K; a Python loop over chunks, never over single blocks.
    """
    _check_qkv(q, k, v)
    allowed = _resolve_mask(mask, q, k)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v)  # nothing to skip
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    bsz, heads, q_len, dim = q.shape
    k_len, dim_v = k.shape[2], v.shape[-1]
    bq = bk = block_size
    nq, nk = math.ceil(q_len / bq), math.ceil(k_len / bk)
    mb, mh = allowed.shape[:2]  # the mask may broadcast over batch / heads: keep it that way
    dev = q.device

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
    slot_ok = torch.arange(m, device=dev) < counts[..., None]  # (mb, mh, nq, m)

    # Mask entries of the chosen blocks: (mb, mh, nq, m, bq, bk) -> (mb, mh, nq, bq, m * bk).
    tiles = allowed.view(mb, mh, nq, bq, nk, bk).transpose(3, 4)  # (mb, mh, nq, nk, bq, bk)
    bi = torch.arange(mb, device=dev)[:, None, None, None]
    hi = torch.arange(mh, device=dev)[None, :, None, None]
    qi = torch.arange(nq, device=dev)[None, None, :, None]
    sub_mask = tiles[bi, hi, qi, order] & slot_ok[..., None, None]
    sub_mask = sub_mask.transpose(3, 4).reshape(mb, mh, nq, bq, m * bk)

    # Key blocks each query block needs, as rows of a flat (B*H*nk, bk*d) table of K or V.
    rows = torch.arange(bsz * heads, device=dev).view(bsz, heads, 1, 1) * nk + order
    rows = rows.reshape(bsz * heads, nq * m)
    k_table, v_table = (_pad_rows(x, nk * bk).reshape(bsz * heads * nk, -1) for x in (k, v))

    q_blocks = _pad_rows(q, nq * bq).reshape(bsz * heads, nq, bq, dim)
    if mb == 1 and mh == 1:
        sub_mask = sub_mask[0]  # (1, nq, bq, m*bk) broadcasts over B*H
    else:
        sub_mask = sub_mask.expand(bsz, heads, nq, bq, m * bk).reshape(bsz * heads, nq, bq, -1)
    # Query blocks go in chunks, so the gathered K / V stay under _GATHER_BYTES whatever L:
    # gathering them all at once would cost m times the memory of K and V.
    per_block = bsz * heads * m * bk * (dim + dim_v) * k.element_size()
    chunk = max(1, _GATHER_BYTES // per_block)
    out = q.new_empty(bsz * heads, nq, bq, dim_v)
    for c in range(0, nq, chunk):
        idx = rows[:, c * m:(c + chunk) * m].reshape(-1)  # (B*H*n*m,) for n query blocks
        n = min(chunk, nq - c)
        kb = k_table.index_select(0, idx).view(bsz * heads, n, m * bk, dim)
        vb = v_table.index_select(0, idx).view(bsz * heads, n, m * bk, dim_v)
        # One batched SDPA per chunk, 4-D so torch picks its fused kernel; it scales by
        # 1/sqrt(D) of the last axis, which is still D here.
        out[:, c:c + n] = _sdpa_guarded(q_blocks[:, c:c + n], kb, vb, sub_mask[:, c:c + n])
    return out.reshape(bsz, heads, nq * bq, dim_v)[:, :, :q_len]


def _pad_rows(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, L, d) -> (B, H, length, d), zeros appended; x itself (no copy) if L == length."""
    return x if x.shape[2] == length else F.pad(x, (0, 0, 0, length - x.shape[2]))


def _blocks_used(allowed: torch.Tensor, bq: int, bk: int) -> torch.Tensor:
    """(mb, mh, nq*bq, nk*bk) contiguous bool -> (mb, mh, nq, nk): block has any True."""
    mb, mh, qp, kp = allowed.shape
    nq, nk = qp // bq, kp // bk
    if bk % 8 == 0 and allowed.storage_offset() % 8 == 0:
        # Read 8 bools as one int64 word: a reduction over 8x fewer elements (a 4096^2 mask
        # takes ~2 ms instead of ~20 ms). The bytes are 0/1, so a word is > 0 iff any is True.
        words = allowed.view(torch.int64).view(mb, mh, nq, bq, nk, bk // 8)
        return words.amax(dim=-1).amax(dim=3) > 0
    return allowed.view(mb, mh, nq, bq, nk, bk).any(dim=-1).any(dim=3)


# Most bytes of gathered K and V blocks held at once by attention_sparse (per chunk of query
# blocks). Gathered K / V grow like L * m * bk, so long sequences need a bound; but each extra
# chunk costs speed (2 chunks: ~1.3x slower at L=4096 on 2 CPU cores), so the bound is loose:
# one chunk at L=4096 with blocks of 64.
_GATHER_BYTES = 64 * 2**20

_COMPILED_FLEX: dict[bool, object] = {}
# Compiled flex on CPU (torch 2.13, measured): lengths that are not multiples of its 128 tile
# gave wrong outputs (L=40: max error ~2), and recompiling with dynamic shapes hit C++ compile
# errors. So on CPU we compile for static shapes and pad Q and K to whole tiles ourselves.
_CPU_FLEX_TILE = 128


def _compiled_flex(on_cuda: bool):
    if on_cuda not in _COMPILED_FLEX:
        dynamic = None if on_cuda else False  # None: torch's default (dynamic after a recompile)
        _COMPILED_FLEX[on_cuda] = torch.compile(require_flex().flex_attention, dynamic=dynamic)
    return _COMPILED_FLEX[on_cuda]


def attention_flex(
    q, k, v, mask=None, *, block_size: int = 128, compile: bool | None = None
) -> torch.Tensor:
    """FlexAttention (torch >= 2.5) under the same mask convention.

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, D); mask: `Mask`, bool tensor broadcastable to
        (B, H, Q, K), a ready FlexAttention `BlockMask` (build it once with
        `Mask.to_block_mask(...)` and reuse it across layers), or None.
    block_size: tile size of the BlockMask built from a Mask / bool tensor.
    compile: run torch.compile(flex_attention), the fused kernel that skips masked tiles.
        Default: True on CUDA, False elsewhere. Uncompiled flex is torch's reference path: it
        materialises the (B, H, Q, K) scores and is slow (8 s for B=1, H=8, L=4096 on 2 CPU
        cores). compile=True on CPU works (0.15 s for that call) but costs 10-20 s of compiling
        per new shape; Q and K are then padded to whole 128-tiles, because this torch's CPU
        kernel returned wrong values for other lengths. Prefer backend="sparse" on CPU.
    Returns (B, H, Q, D) in q's dtype; rows with no allowed key are zeros.
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
        allowed = _resolve_mask(mask, q, k)
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
        out = _compiled_flex(q.is_cuda)(q, k, v, block_mask=block_mask)
    else:
        with warnings.catch_warnings():
            # Uncompiled flex warns that it materialises the scores: that is the documented choice.
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch")
            out = flex.flex_attention(q, k, v, block_mask=block_mask)
    return out[:, :, :q_len]


def attention(q, k, v, mask=None, backend: str = "sdpa") -> torch.Tensor:
    """Attention with the chosen backend: "eager", "sdpa" (default), "sparse" or "flex".

    q: (B, H, Q, D), k: (B, H, K, D), v: (B, H, K, Dv) float tensors.
    mask: `unmask.masks.Mask`, bool tensor broadcastable to (B, H, Q, K) (True = may attend),
        or None (everything attends to everything).
    Returns (B, H, Q, Dv) in q's dtype. Every backend gives the same result up to rounding,
    and zeros for a query with no allowed key. See the module docstring for when to use which.
    """
    if backend == "eager":
        return attention_eager(q, k, v, mask)
    if backend == "sdpa":
        return attention_sdpa(q, k, v, mask)
    if backend == "sparse":
        return attention_sparse(q, k, v, mask)
    if backend == "flex":
        return attention_flex(q, k, v, mask)
    raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "attention",
    "attention_eager",
    "attention_flex",
    "attention_sdpa",
    "attention_sparse",
]
