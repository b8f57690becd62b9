"""AdamW with the usual BERT exclusions, and learning-rate schedules.

    optimizer = adamw(model, lr=5e-4, weight_decay=0.01)
    lr = 5e-4 * lr_factor(step, "linear", warmup_steps=100, total_steps=10_000)

Weight decay never applies to biases, norms or embeddings' norm weights: decaying them only
hurts (BERT, RoBERTa and ModernBERT all exclude them). A parameter is "no decay" when it is
1-D (biases, LayerNorm weights and biases).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("constant", "linear", "cosine", "wsd")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices with weight_decay, 1-D parameters (biases, norms) without.

    Tied parameters appear once (named_parameters removes duplicates); frozen ones are left out.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def adamw(model: nn.Module, lr: float, weight_decay: float = 0.01,
          betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6) -> torch.optim.AdamW:
    """AdamW over parameter_groups(model). The fused CPU/GPU kernel is used where available."""
    if lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    groups = parameter_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # parameters on a device or dtype the fused kernel lacks
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def lr_factor(step: int, kind: str, warmup_steps: int, total_steps: int,
              decay_fraction: float = 0.2, final: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based).

    warmup: linear from 1/(warmup+1) to 1 over warmup_steps, then
      constant  stays at 1
      linear    falls linearly to `final` at total_steps
      cosine    half a cosine down to `final` at total_steps
      wsd       warmup-stable-decay: 1 until the last decay_fraction of the steps, then linear
                to `final` (MiniCPM, ModernBERT's trapezoid)
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    if kind == "wsd":
        decay_start = max(warmup_steps, int(total_steps * (1 - decay_fraction)))
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total_steps - decay_start)
        return 1.0 - (1.0 - final) * min(1.0, progress)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
