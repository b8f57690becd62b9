"""Attention masks as objects: build, combine, convert, render.

Axes: B batch, H heads, Q queries, K keys, L sequence length (Q = K = L for self-attention),
n number of positions, nb number of blocks.

One convention everywhere: a mask is a boolean tensor, True = may attend, shaped (B, H|1, Q, K)
or with any axis of size 1 so that it broadcasts to (B, H, Q, K). `Mask` wraps such a tensor and
is always 4-D; every constructor below returns one. Combine them with `&` (both allow) and `|`
(either allows); convert once, at the edge, with `to_additive` or `to_block_mask` (torch's SDPA
takes `.allowed` as it is). Constructors that build an (L, L) or larger tensor first check its
size against MAX_MASK_BYTES, so a typo such as causal(10**6) fails at once instead of trying to
allocate a terabyte.

    >>> import torch
    >>> from unmask import masks
    >>> m = masks.causal(3) & masks.padding(torch.tensor([[1, 1, 0]]))
    >>> print(m)
     0  -∞  -∞
     0   0  -∞
     0   0  -∞
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

LAYOUT = "(B, H|1, Q, K)"
NEG_INF = "-∞"

# HF additive masks hold 0 and one very negative value: -10000 (old BERT code), finfo.min or -inf.
# Anything below this counts as "masked"; -10000 in bf16 rounds to -9984, so the bar sits lower.
_ADDITIVE_MASKED_BELOW = -1000.0

# __str__ renders the whole grid only up to this many rows/columns; render() has no limit.
_STR_MAX = 64

# Largest mask, in bytes (peak of a constructor, temporaries included), that the constructors
# will build; assign unmask.masks.MAX_MASK_BYTES to change it.
MAX_MASK_BYTES = 4 * 2**30


class MaskTooLarge(ValueError):
    """A mask constructor would need more memory than MAX_MASK_BYTES."""


class Mask:
    """A boolean attention mask, True = may attend, always 4-D (B|1, H|1, Q|1, K).

    allowed: bool tensor (B, H|1, Q, K), any axis may be 1 (broadcast). A 2-D (Q, K) tensor is
        promoted to (1, 1, Q, K). 3-D tensors are refused because (B, Q, K) and (H, Q, K) cannot
        be told apart: add the missing axis yourself (`t[:, None]` for (B, Q, K)).
    """

    __slots__ = ("allowed",)

    def __init__(self, allowed: torch.Tensor):
        if isinstance(allowed, Mask):
            allowed = allowed.allowed
        if not isinstance(allowed, torch.Tensor):
            raise TypeError(f"Mask needs a torch.Tensor of dtype bool, got {type(allowed).__name__}")
        if allowed.dtype != torch.bool:
            raise TypeError(
                f"Mask needs a bool tensor (True = may attend), got dtype {allowed.dtype}. "
                "For a Hugging Face attention_mask of 1s/0s use masks.padding(...) or "
                "masks.from_hf(...); for an additive float mask use masks.from_hf(...)."
            )
        if allowed.dim() == 2:
            allowed = allowed[None, None]  # (Q, K) -> (1, 1, Q, K)
        if allowed.dim() != 4:
            raise ValueError(
                f"Mask needs a 2-D (Q, K) or 4-D {LAYOUT} bool tensor, got shape "
                f"{tuple(allowed.shape)}. A 3-D (B, Q, K) mask needs its head axis: t[:, None]."
            )
        self.allowed = allowed

    # --- shape ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B|1, H|1, Q|1, K) as a plain tuple of ints."""
        return tuple(self.allowed.shape)

    @property
    def device(self) -> torch.device:
        return self.allowed.device

    @property
    def density(self) -> float:
        """Fraction of allowed (query, key) pairs, over the stored (unbroadcast) tensor."""
        return self.allowed.float().mean().item() if self.allowed.numel() else 0.0

    def to(self, device) -> Mask:
        """The same mask on another device."""
        return Mask(self.allowed.to(device))

    # --- combination ---------------------------------------------------------------------
    def _combine(self, other, op, symbol: str) -> Mask:
        other = Mask(other)
        try:
            torch.broadcast_shapes(self.shape, other.shape)
        except RuntimeError:
            raise ValueError(
                f"cannot combine masks of shapes {self.shape} and {other.shape} with '{symbol}': "
                f"masks use the layout {LAYOUT} and each axis must be equal or 1. A (B, L) "
                "padding mask becomes (B, 1, 1, L) through masks.padding(...)."
            ) from None
        return Mask(op(self.allowed, other.allowed.to(self.device)))

    def __and__(self, other) -> Mask:
        """Allowed where both masks allow (intersection); shapes broadcast."""
        return self._combine(other, torch.logical_and, "&")

    def __or__(self, other) -> Mask:
        """Allowed where either mask allows (union); shapes broadcast."""
        return self._combine(other, torch.logical_or, "|")

    __rand__ = __and__
    __ror__ = __or__

    def __invert__(self) -> Mask:
        """Allowed exactly where this mask forbids."""
        return Mask(~self.allowed)

    # --- conversions (the only place they happen) ----------------------------------------
    def to_additive(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Float mask for `scores + mask`: 0 where allowed, -inf where not, shape `self.shape`.

        The one boolean-to-additive conversion of unmask. -inf is exact in every float dtype, so
        a masked key gets weight exactly 0 (-10000 leaks weight; finfo.min overflows in fp16).
        A row with no allowed key is all -inf and softmax makes it NaN: `unmask.attention`
        guards such rows and returns zeros; do the same in your own softmax.
        """
        if not dtype.is_floating_point:
            raise TypeError(f"to_additive needs a floating dtype, got {dtype}")
        out = torch.zeros(self.shape, dtype=dtype, device=self.device)
        return out.masked_fill_(~self.allowed, float("-inf"))

    def to_block_mask(
        self, block_size: int | tuple[int, int] = 128, *, q_len: int | None = None, device=None
    ):
        """FlexAttention `BlockMask` equal to this mask (torch >= 2.5).

        block_size: int or (query block, key block), the FlexAttention tile; 128 is its default.
        q_len: number of queries, needed when this mask's Q axis is 1 (a padding mask).
        device: where the BlockMask lives (default: this mask's device).
        Tiles with no allowed entry are skipped by FlexAttention, fully allowed tiles skip the
        mask lookup, the rest read this mask's tensor. Build it once and reuse it across layers.
        """
        flex = require_flex()
        qb, kb = (block_size, block_size) if isinstance(block_size, int) else block_size
        allowed = self.allowed if device is None else self.allowed.to(device)
        bsz, heads, rows, k_len = allowed.shape
        if q_len is not None and rows not in (1, q_len):
            raise ValueError(f"q_len={q_len} does not match this mask's Q axis ({rows})")
        q_len = q_len or rows
        allowed = allowed.expand(bsz, heads, q_len, k_len)
        # Pad to whole tiles with False: kernels may evaluate the mask past the end of a tile.
        nq, nk = math.ceil(q_len / qb), math.ceil(k_len / kb)
        padded = torch.nn.functional.pad(allowed, (0, nk * kb - k_len, 0, nq * qb - q_len))
        tiles = padded.view(bsz, heads, nq, qb, nk, kb).sum(dim=(3, 5))  # (B, H, nq, nk)
        full_tiles = tiles == qb * kb
        partial_tiles = (tiles > 0) & ~full_tiles

        def ordered(dense: torch.Tensor):
            # Per query tile: how many key tiles, and their indices, listed first.
            dense = dense.to(torch.int32)
            order = torch.argsort(dense, dim=-1, descending=True, stable=True)
            return dense.sum(-1).to(torch.int32).contiguous(), order.to(torch.int32).contiguous()

        def mask_mod(b, h, q_idx, kv_idx):
            # A broadcast axis reads index 0: flex passes the real batch / head index.
            return padded[0 if bsz == 1 else b, 0 if heads == 1 else h, q_idx, kv_idx]

        kv_num, kv_idx = ordered(partial_tiles)
        full_num, full_idx = ordered(full_tiles)
        kwargs = {"BLOCK_SIZE": (qb, kb), "mask_mod": mask_mod}
        try:
            return flex.BlockMask.from_kv_blocks(
                kv_num, kv_idx, full_num, full_idx, seq_lengths=(q_len, k_len), **kwargs
            )
        except TypeError:  # torch 2.5 has no seq_lengths; the padded tiles are False anyway
            return flex.BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, **kwargs)

    # --- rendering ---------------------------------------------------------------------
    def render(
        self,
        labels: Sequence[str] | None = None,
        *,
        query_labels: Sequence[str] | None = None,
        key_labels: Sequence[str] | None = None,
        batch: int = 0,
        head: int = 0,
    ) -> str:
        """The textbook picture of one (batch, head) slice: `0` where allowed, `-∞` where not.

        labels: token strings for rows and columns (self-attention); query_labels / key_labels
            override them for rows / columns. Cells are right-aligned in columns, two spaces apart.
        batch, head: which slice to draw when B > 1 or H > 1 (a broadcast axis reads index 0).
        Returns the text, one line per query, no trailing newline.
        """
        grid = self.grid(batch, head)  # (Q, K) bool
        q_len, k_len = grid.shape
        rows = query_labels if query_labels is not None else labels
        cols = key_labels if key_labels is not None else labels
        if rows is not None and len(rows) != q_len:
            raise ValueError(f"got {len(rows)} row labels for {q_len} query positions")
        if cols is not None and len(cols) != k_len:
            raise ValueError(f"got {len(cols)} column labels for {k_len} key positions")
        widths = [max(2, len(str(cols[j])) if cols is not None else 0) for j in range(k_len)]
        label_w = max((len(str(r)) for r in rows), default=0) if rows is not None else 0

        def line(head_cell: str | None, cells: list[str]) -> str:
            body = "  ".join(c.rjust(w) for c, w in zip(cells, widths))
            return body if head_cell is None else f"{head_cell.ljust(label_w)}  {body}"

        lines = []
        if cols is not None:
            lines.append(line("" if rows is not None else None, [str(c) for c in cols]))
        for i, row in enumerate(grid.tolist()):
            cells = ["0" if ok else NEG_INF for ok in row]
            lines.append(line(str(rows[i]) if rows is not None else None, cells))
        return "\n".join(lines)

    def grid(self, batch: int = 0, head: int = 0) -> torch.Tensor:
        """The (Q, K) bool tensor of one (batch, head), on the CPU; a broadcast axis reads 0."""
        bsz, heads = self.shape[:2]
        for name, idx, size in (("batch", batch, bsz), ("head", head, heads)):
            if size > 1 and not -size <= idx < size:
                raise IndexError(f"{name} {idx} is out of range for a mask of shape {self.shape}")
        return self.allowed[0 if bsz == 1 else batch, 0 if heads == 1 else head].cpu()

    def __str__(self) -> str:
        q_len, k_len = self.shape[2:]
        if q_len > _STR_MAX or k_len > _STR_MAX:
            return (f"{self!r}: too large to print; use .render() for the text or "
                    "unmask.viz.save_mask_png(...) for a picture")
        return self.render()

    def __repr__(self) -> str:
        return f"Mask(shape={self.shape}, density={self.density:.3f})"


# --- validation helpers -------------------------------------------------------------------

def check_broadcast(mask_shape: Sequence[int], target: Sequence[int],
                    what: str = "attention mask") -> None:
    """Raise ValueError unless `mask_shape` broadcasts to `target` (B, H, Q, K) axis by axis."""
    mask_shape, target = tuple(mask_shape), tuple(target)
    if len(mask_shape) != 4 or any(m not in (1, t) for m, t in zip(mask_shape, target)):
        raise ValueError(
            f"{what} of shape {mask_shape} does not broadcast to scores of shape "
            f"{target}: expected the layout {LAYOUT}, each axis equal to the scores' or 1. "
            "A (B, L) padding mask becomes (B, 1, 1, L) through masks.padding(...); a (Q, K) "
            "mask becomes (1, 1, Q, K) through Mask(...)."
        )


def resolve(mask, target: Sequence[int], device=None, what: str = "attention mask"):
    """A mask argument -> bool tensor broadcastable to `target` (B, H, Q, K) on `device`, or None.

    mask: `Mask`, bool tensor (Q, K) or broadcastable to (B, H, Q, K), or None. Raises TypeError
    for a non-boolean tensor (an additive or 1/0 mask) and ValueError for a shape that does not
    broadcast, each naming the fix.
    """
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        raise TypeError(
            f"{what} must be boolean (True = may attend), got {mask.dtype}. Convert a Hugging "
            "Face mask with unmask.masks.from_hf(...) or unmask.masks.padding(...)."
        )
    allowed = Mask(mask).allowed  # promotes (Q, K) to (1, 1, Q, K), refuses other shapes
    check_broadcast(allowed.shape, target, what)
    return allowed if device is None else allowed.to(device)


def _room(what: str, shape: Sequence[int], bytes_per_entry: int = 1) -> None:
    """Refuse (MaskTooLarge) to build a mask of `shape` needing more than MAX_MASK_BYTES.

    bytes_per_entry: peak bytes per mask entry, temporaries included (1 for one bool tensor).
    """
    need = math.prod(shape) * bytes_per_entry
    if need > MAX_MASK_BYTES:
        raise MaskTooLarge(
            f"{what} would build a {tuple(shape)} mask needing {need:,} bytes "
            f"({need / 2**30:,.1f} GiB), over the limit of {MAX_MASK_BYTES:,} bytes; check the "
            "length, or raise unmask.masks.MAX_MASK_BYTES if you have the memory"
        )


def _positions(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive int (a number of positions), got {n!r}")
    return n


def require_flex():
    """The torch.nn.attention.flex_attention module, or a RuntimeError saying what to use instead."""
    try:
        from torch.nn.attention import flex_attention
    except ImportError as err:
        raise RuntimeError(
            f"FlexAttention needs torch >= 2.5 with torch.nn.attention.flex_attention; this is "
            f"torch {torch.__version__}. Use backend='sdpa' or 'sparse' instead."
        ) from err
    return flex_attention


# --- constructors ---------------------------------------------------------------------

def padding(attention_mask: torch.Tensor) -> Mask:
    """Key padding from a Hugging Face (B, L) attention_mask of 1 (token) / 0 (padding).

    attention_mask: (B, L) of 1/0 (any int or float dtype) or bool. Returns Mask (B, 1, 1, L):
    every query may attend to the real tokens of its row and to no padding key. (Padding queries
    still attend to the real tokens, as in BERT; their outputs are ignored downstream.)
    """
    attention_mask = torch.as_tensor(attention_mask)
    if attention_mask.dim() != 2:
        raise ValueError(
            f"padding() takes the (B, L) attention_mask a tokenizer returns, got shape "
            f"{tuple(attention_mask.shape)}; for a 4-D mask use masks.from_hf(...) or Mask(...)"
        )
    if attention_mask.dtype != torch.bool:
        bad = (attention_mask != 0) & (attention_mask != 1)
        if bool(bad.any()):
            hint = (" It looks like an additive float mask (0 / -inf): use masks.from_hf(...)."
                    if attention_mask.is_floating_point() else "")
            raise ValueError(
                "attention_mask must hold only 1 (token) and 0 (padding); found "
                f"{sorted(set(attention_mask[bad].tolist()))[:5]}.{hint}"
            )
    return Mask(attention_mask.bool()[:, None, None, :])


def from_hf(attention_mask: torch.Tensor) -> Mask:
    """Any attention mask a Hugging Face model accepts -> Mask.

    attention_mask:
      (B, L) 1/0 or bool: key padding, same as `padding` -> (B, 1, 1, L);
      (B, Q, K) 1/0 or bool: per-row masks (HF's 3-D form) -> (B, 1, Q, K);
      (B, H|1, Q, K) bool or 1/0 int: used as is;
      (B, H|1, Q, K) float additive: 0 where allowed and -10000, finfo.min or -inf where masked
        (values below -1000 count as masked).
    """
    attention_mask = torch.as_tensor(attention_mask)
    dim = attention_mask.dim()
    if dim == 2:
        return padding(attention_mask)
    if dim not in (3, 4):
        raise ValueError(
            f"from_hf expects a (B, L), (B, Q, K) or {LAYOUT} mask, got shape "
            f"{tuple(attention_mask.shape)}"
        )
    floating = attention_mask.is_floating_point()
    allowed = attention_mask > _ADDITIVE_MASKED_BELOW if floating else attention_mask != 0
    return Mask(allowed[:, None] if dim == 3 else allowed)


def causal(n: int, *, device=None) -> Mask:
    """Query i attends to keys 0..i. Returns Mask (1, 1, n, n)."""
    n = _positions(n)
    _room(f"causal({n})", (n, n), 2)
    return Mask(torch.ones(n, n, dtype=torch.bool, device=device).tril())


def full(n: int, k: int | None = None, *, device=None) -> Mask:
    """Every query attends to every key (BERT without padding). Returns Mask (1, 1, n, k|n)."""
    n = _positions(n)
    k = n if k is None else _positions(k, "k")
    _room(f"full({n}, {k})", (n, k))
    return Mask(torch.ones(n, k, dtype=torch.bool, device=device))


def window(
    n: int,
    size: int | None = None,
    *,
    left: int | None = None,
    right: int | None = None,
    device=None,
) -> Mask:
    """Local (sliding-window) attention. Returns Mask (1, 1, n, n).

    window(n, size): symmetric; query i attends to keys j with |i - j| <= size // 2
        (ModernBERT's convention: size=128 sees 64 tokens on each side, 129 keys in all).
    window(n, left=a, right=b): query i attends to keys i - a .. i + b; left=w, right=0 is the
        causal sliding window of Mistral-style decoders.
    """
    n = _positions(n)
    if size is not None and (left is not None or right is not None):
        raise ValueError("pass either window(n, size) or window(n, left=..., right=...), not both")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"window size must be an int >= 0, got {size!r}")
        left = right = size // 2
    elif left is None and right is None:
        raise ValueError("window needs a size, e.g. window(n, 128), or left=/right= extents")
    left, right = left or 0, right or 0
    if min(left, right) < 0:
        raise ValueError(f"window extents must be >= 0, got left={left}, right={right}")
    _room(f"window({n})", (n, n), 2)
    # keys j with -left <= j - i <= right: the band between two diagonals
    return Mask(torch.ones(n, n, dtype=torch.bool, device=device).triu(-left).tril(right))


def global_tokens(n: int, positions: Sequence[int] | torch.Tensor, *, device=None) -> Mask:
    """Global tokens ([CLS]-style): they attend everywhere and every query attends to them.

    positions: indices in [-n, n) (negatives count from the end). Returns Mask (1, 1, n, n),
    False elsewhere: OR it with a local pattern, e.g. `window(n, 128) | global_tokens(n, [0])`.
    """
    n = _positions(n)
    _room(f"global_tokens({n})", (n, n))
    pos = torch.as_tensor(positions, dtype=torch.long).flatten()
    if pos.numel() and (int(pos.min()) < -n or int(pos.max()) >= n):
        raise ValueError(f"global token positions must lie in [-{n}, {n}), got {pos.tolist()}")
    is_global = torch.zeros(n, dtype=torch.bool, device=device)
    is_global[pos.to(is_global.device) % n] = True
    return Mask(is_global[:, None] | is_global[None, :])


def block_sparse(
    n: int,
    block_size: int,
    window_blocks: int = 1,
    global_blocks: int | Sequence[int] = 1,
    random_blocks: int = 0,
    seed: int = 0,
    *,
    device=None,
) -> Mask:
    """BigBird-style block-sparse attention. Returns Mask (1, 1, n, n).

    Positions are cut into nb = ceil(n / block_size) blocks, and query block i attends to key
    block j when any of these holds:
      window_blocks: |i - j| <= window_blocks (BigBird's 3 sliding blocks is window_blocks=1);
      global_blocks: i or j is global; an int g makes the first g blocks global, a sequence
        names block indices (BigBird ITC uses [0, -1]);
      random_blocks: j is one of `random_blocks` extra blocks drawn per query block among those
        not already allowed, from torch.Generator seeded with `seed` (same seed, same mask).
    """
    n, block_size = _positions(n), _positions(block_size, "block_size")
    _room(f"block_sparse({n})", (n, n), 3)
    nb = math.ceil(n / block_size)
    if window_blocks < 0 or random_blocks < 0:
        raise ValueError("window_blocks and random_blocks must be >= 0")
    b = torch.arange(nb)
    layout = (b[:, None] - b[None, :]).abs() <= window_blocks  # (nb, nb)
    if isinstance(global_blocks, int):
        if global_blocks < 0:
            raise ValueError(f"global_blocks must be >= 0, got {global_blocks}")
        glob = list(range(min(global_blocks, nb)))
    else:
        glob = [int(g) for g in global_blocks]
        if any(not -nb <= g < nb for g in glob):
            raise ValueError(f"global block indices must lie in [-{nb}, {nb}), got {glob}")
    layout |= global_tokens(nb, glob).allowed[0, 0]  # global blocks are global tokens of nb
    if random_blocks:
        gen = torch.Generator().manual_seed(seed)
        draw = torch.rand(nb, nb, generator=gen).masked_fill(layout, -1.0)  # -1: already in
        top, idx = draw.topk(min(random_blocks, nb), dim=-1)
        layout |= torch.zeros(nb, nb, dtype=torch.bool).scatter_(1, idx, top >= 0)
    dense = layout.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n, :n]
    return Mask(dense.to(device))


def document(doc_ids: torch.Tensor) -> Mask:
    """Packed rows: a token attends only to tokens of the same document.

    doc_ids: (B, L) or (L,) integer document id per token; negative ids mark padding, which
    attends to nothing and is attended by nothing. Returns Mask (B, 1, L, L).
    """
    doc_ids = torch.as_tensor(doc_ids)
    if doc_ids.dim() == 1:
        doc_ids = doc_ids[None]
    if doc_ids.dim() != 2 or doc_ids.is_floating_point() or doc_ids.dtype == torch.bool:
        raise ValueError(
            f"document() takes (B, L) or (L,) integer document ids, got shape "
            f"{tuple(doc_ids.shape)} and dtype {doc_ids.dtype}"
        )
    _room("document(...)", (doc_ids.shape[0], doc_ids.shape[1], doc_ids.shape[1]), 3)
    same = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, L, L)
    real = doc_ids >= 0
    return Mask((same & real[:, :, None] & real[:, None, :])[:, None])


def document_from_lengths(
    lengths: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | None = None,
    *,
    cu_seqlens: Sequence[int] | torch.Tensor | None = None,
    total: int | None = None,
    device=None,
) -> Mask:
    """Packed rows described by document lengths. Returns Mask (B, 1, T, T).

    lengths: one row's document lengths, e.g. [3, 5, 2], or one list per row for B rows.
    cu_seqlens: alternatively, flash-attention's cumulative form [0, 3, 8, 10] (one row).
    total: row length T; positions past the documents are padding (default: the longest row).
    """
    if (lengths is None) == (cu_seqlens is None):
        raise ValueError("pass exactly one of lengths=... or cu_seqlens=...")
    if cu_seqlens is not None:
        cu = torch.as_tensor(cu_seqlens, dtype=torch.long).flatten()
        if cu.numel() < 1 or int(cu[0]) != 0 or bool((cu.diff() < 0).any()):
            raise ValueError(
                f"cu_seqlens must start at 0 and never decrease, e.g. [0, 3, 8], got {cu.tolist()}"
            )
        rows = [cu.diff().tolist()]
    else:
        lengths = lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths)
        rows = [list(r) for r in lengths] if lengths and not isinstance(lengths[0], int) \
            else [lengths]
    if any(int(x) < 0 for r in rows for x in r):
        raise ValueError(f"document lengths must be >= 0, got {rows}")
    longest = max(sum(r) for r in rows)
    total = longest if total is None else total
    if total < longest or total < 1:
        raise ValueError(f"total={total} is shorter than the longest row ({longest} tokens)")
    ids = torch.full((len(rows), total), -1, dtype=torch.long)
    for b, r in enumerate(rows):  # construction time, once per batch: a loop over rows is fine
        ids[b, : sum(r)] = torch.repeat_interleave(torch.arange(len(r)), torch.tensor(r))
    return document(ids.to(device))


def prefix_lm(n: int, prefix_len: int | Sequence[int] | torch.Tensor, *, device=None) -> Mask:
    """Bidirectional inside the prefix, causal after it (T5 / UniLM prefix LM).

    prefix_len: an int, or one per row (B,). Query i attends to key j if j <= i or j < prefix.
    Returns Mask (1, 1, n, n) for an int, (B, 1, n, n) for per-row lengths.
    """
    n = _positions(n)
    plen = torch.as_tensor(prefix_len, dtype=torch.long, device=device)
    if plen.dim() > 1 or bool((plen < 0).any()) or bool((plen > n).any()):
        raise ValueError(f"prefix_len must be an int or (B,) ints in [0, {n}], got {prefix_len!r}")
    _room(f"prefix_lm({n})", (plen.numel(), n, n), 2)
    i = torch.arange(n, device=device)
    causal_part = i[None, :] <= i[:, None]  # (Q, K)
    in_prefix = i[None, :] < plen.reshape(-1, 1)  # (B|1, K)
    allowed = causal_part[None] | in_prefix[:, None, :]  # (B|1, Q, K)
    return Mask(allowed[:, None])


__all__ = [
    "MAX_MASK_BYTES",
    "Mask",
    "MaskTooLarge",
    "block_sparse",
    "causal",
    "check_broadcast",
    "document",
    "document_from_lengths",
    "from_hf",
    "full",
    "global_tokens",
    "padding",
    "prefix_lm",
    "require_flex",
    "resolve",
    "window",
]
