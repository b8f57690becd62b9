"""Pictures: attention masks and attention weights as PNG heatmaps.

Axes: Q queries (rows, top to bottom), K keys (columns, left to right), N layers, nh heads.
matplotlib is imported inside the functions and figures are built with `Figure`, never pyplot
(savefig renders PNG with Agg), so importing unmask stays fast and the caller's pyplot backend
and figures are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from unmask.masks import Mask

# Allowed cells dark, forbidden cells pale: reads like the "0 / -∞" text rendering.
_ALLOWED = "#1f4e79"
_FORBIDDEN = "#eef1f5"
# Tick labels beyond this many positions turn into an unreadable smear: show none instead.
_MAX_TICK_LABELS = 64


def save_mask_png(
    mask: Mask | torch.Tensor,
    path: str | Path,
    labels: Sequence[str] | None = None,
    *,
    batch: int = 0,
    head: int = 0,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write one (batch, head) slice of a mask as a PNG heatmap: dark = may attend.

    mask: `Mask` or bool tensor (Q, K) / (B, H|1, Q, K), True = may attend.
    path: where to write the PNG (parent folders must exist).
    labels: token strings for rows and columns (self-attention, up to 64 are drawn).
    batch, head: which slice when B > 1 or H > 1 (a broadcast axis reads index 0).
    Returns the path written.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    mask = Mask(mask)
    grid = mask.grid(batch, head).numpy()  # (Q, K) bool
    q_len, k_len = grid.shape
    if labels is not None and (len(labels) != q_len or len(labels) != k_len):
        raise ValueError(
            f"got {len(labels)} labels for a {q_len} x {k_len} mask; labels name the positions "
            "of a self-attention mask, one per row and column"
        )
    side = min(12.0, max(3.0, 0.35 * max(q_len, k_len) + 1.5))
    fig = Figure(figsize=(side * k_len / max(q_len, k_len) + 1.0, side), dpi=dpi)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap=ListedColormap([_FORBIDDEN, _ALLOWED]), vmin=0, vmax=1,
              interpolation="nearest", aspect="equal")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if labels is not None and q_len <= _MAX_TICK_LABELS:
        ax.set_xticks(range(k_len), [str(t) for t in labels], rotation=90)
        ax.set_yticks(range(q_len), [str(t) for t in labels])
    if title is None:
        title = f"allowed {int(grid.sum())} of {grid.size} pairs"
        if mask.shape[0] > 1 or mask.shape[1] > 1:
            title += f" (batch {batch}, head {head})"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)


def save_attention_png(
    attentions: Sequence[torch.Tensor] | torch.Tensor,
    path: str | Path,
    labels: Sequence[str] | None = None,
    *,
    layer: int | None = None,
    head: int | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write attention weights as a grid of heatmaps: one row per layer, one column per head.

    attentions: what Encoder(..., output_attentions=True) returns, N tensors (1, nh, Q, K), or
        one float tensor (N, nh, Q, K). Rows are probabilities (darker = more weight).
    labels: token strings for rows and columns (drawn up to 64 positions, in single panels
        and on the left column / bottom row of a grid).
    layer, head: draw only that layer / head (None = all).
    Returns the path written.
    """
    from matplotlib.figure import Figure

    probs = attentions if isinstance(attentions, torch.Tensor) else torch.cat(list(attentions))
    if probs.dim() != 4 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"attentions must be (layers, heads, L, L), got {tuple(probs.shape)}; "
                         "pass one sentence's Encoder(..., output_attentions=True).attentions")
    n_layers, n_heads, length = probs.shape[0], probs.shape[1], probs.shape[-1]
    for name, idx, size in (("layer", layer, n_layers), ("head", head, n_heads)):
        if idx is not None and not 0 <= idx < size:
            raise ValueError(f"{name} {idx} is out of range: the model has {size} ({name}s "
                             f"0..{size - 1})")
    if labels is not None and len(labels) != length:
        raise ValueError(f"got {len(labels)} labels for {length} positions")
    layers = range(n_layers) if layer is None else [layer]
    heads = range(n_heads) if head is None else [head]
    probs = probs.detach().float().cpu()
    cell = min(4.0, max(1.6, 0.18 * length + 1.0))
    fig = Figure(figsize=(cell * len(heads) + 0.5, cell * len(layers) + 0.8), dpi=dpi)
    axes = fig.subplots(len(layers), len(heads), squeeze=False)
    names = [str(t) for t in labels] if labels is not None and length <= _MAX_TICK_LABELS else []
    for r, li in enumerate(layers):
        for c, hi in enumerate(heads):
            ax = axes[r][c]
            ax.imshow(probs[li, hi].numpy(), cmap="Blues", vmin=0.0, vmax=1.0,
                      interpolation="nearest", aspect="equal")
            ax.set_title(f"layer {li} head {hi}", fontsize=8)
            # Token names on the bottom row and the left column only; no ticks elsewhere.
            bottom, left = names if r == len(layers) - 1 else [], names if c == 0 else []
            ax.set_xticks(range(len(bottom)), bottom, rotation=90, fontsize=6)
            ax.set_yticks(range(len(left)), left, fontsize=6)
    fig.suptitle(title or "attention weights (rows: queries, columns: keys)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)


__all__ = ["save_attention_png", "save_mask_png"]
