"""AdamW with the usual BERT exclusions, layer-wise learning-rate decay, freezing, and
learning-rate schedules.

    optimizer = adamw(model, lr=5e-4, weight_decay=0.01)
    optimizer = adamw(model, lr=1e-4, layer_decay=0.8)       # ELECTRA / DeBERTa fine-tuning
    freeze(model, embeddings=True, layers=2)                  # before building the optimizer
    lr = 5e-4 * lr_factor(step, "linear", warmup_steps=100, total_steps=10_000)

Weight decay never applies to biases, norms or embeddings' norm weights: decaying them only
hurts (BERT, RoBERTa and ModernBERT all exclude them). A parameter is "no decay" when it is
1-D (biases, LayerNorm weights and biases).

Layer-wise decay (Clark et al. 2020, ELECTRA; used by DeBERTa's fine-tuning), with the
encoder's L layers numbered 1 (bottom) to L (top) and the embeddings as depth 0:

    task head (everything outside the encoder)   lr
    layer i = 1 .. L                              lr * D ** (L + 1 - i)   (top layer: lr * D)
    embeddings                                    lr * D ** (L + 1)

i.e. the rate falls by D per step down from the head, as BEiT / MAE / PaddleNLP implement it
(ELECTRA's own code skips one more step between the head and the top layer). A weight read by
several layers gets the rate of its highest user: an ALBERT block shared by layers 1..L gets
layer L's, DeBERTa's relative-position table (read by every layer) layer L's, DeBERTa-v2's
convolution (beside layer 1) layer 1's, a pre-norm encoder's final norm layer L's. An objective
holding two encoders (ELECTRA's generator and discriminator) decays each by its own depth.
Each group carries "lr_scale" (its multiple of the peak rate); the training loop sets
lr = scheduled lr * lr_scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unmask.model import Encoder

SCHEDULES = ("constant", "linear", "cosine", "wsd")


def _depths(model: nn.Module) -> dict[int, tuple[int, int]]:
    """id(parameter) -> (depth, L) for every parameter inside an Encoder of `model`:
    depth 0 = embeddings, 1..L = the layers (see the module docstring). A parameter shared
    by two encoders (ELECTRA's embeddings) keeps the first encoder's depth."""
    found: dict[int, tuple[int, int]] = {}
    for module in (m for m in model.modules() if isinstance(m, Encoder)):
        cfg = module.config
        # block -> its highest user layer, 1-based (ALBERT shares blocks)
        top = {cfg.block_of(i): i + 1 for i in range(cfg.num_layers)}
        for name, p in module.named_parameters():
            part = name.split(".")
            depth = {"embeddings": 0, "conv": 1}.get(part[0], cfg.num_layers)
            if part[0] == "layers":
                depth = top[int(part[1])]
            found.setdefault(id(p), (depth, cfg.num_layers))
    return found


def parameter_groups(model: nn.Module, weight_decay: float,
                     layer_decay: float | None = None) -> list[dict]:
    """AdamW groups: matrices with weight_decay, 1-D parameters (biases, norms) without.

    layer_decay: None (or 1.0) gives those two groups; D in (0, 1) gives one pair per depth
    with "lr_scale" D ** (L + 1 - depth) (module docstring), and the head's pair with 1.0.
    Tied parameters appear once (parameters() removes duplicates); frozen ones
    (requires_grad False) are left out, and so is a group they would leave empty.
    """
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
    depths = {} if layer_decay in (None, 1.0) else _depths(model)
    groups: dict[tuple[int, bool], dict] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        depth, layers = depths.get(id(p), (None, None))
        exponent = 0 if depth is None else layers + 1 - depth
        key = (exponent, p.dim() >= 2)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if key[1] else 0.0,
                           "lr_scale": (layer_decay or 1.0) ** exponent}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: (-k[0], not k[1]))]


def freeze(model: nn.Module, embeddings: bool = False, layers: int = 0) -> int:
    """Stop training the embeddings and/or the lowest `layers` layers of the encoder(s) in
    `model` (requires_grad False; the optimizer then leaves them out and DDP ignores them).

    Layers freeze from the bottom (layer 1 first), never from the top: the top layers and the
    head adapt to the task. A weight several layers read freezes only when all of them do (an
    ALBERT block shared by every layer: only with layers = L; DeBERTa's relative table: only
    with layers = L). layers = L with embeddings trains the head alone (a linear probe).
    Returns the number of frozen parameter values. Raises ValueError when layers exceeds the
    encoder's depth, or model holds no encoder.
    """
    if layers < 0:
        raise ValueError(f"freeze_layers must be >= 0, got {layers}")
    if not embeddings and not layers:
        return 0
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not encoders:
        raise ValueError(f"{type(model).__name__} holds no unmask Encoder to freeze")
    for encoder in encoders:
        if layers > encoder.config.num_layers:
            raise ValueError(f"--freeze-layers {layers} exceeds the {encoder.config.num_layers}"
                             f" layers of the model; freeze at most "
                             f"{encoder.config.num_layers} (the lowest ones)")
    frozen, depths = 0, _depths(model)
    for p in model.parameters():
        depth = depths.get(id(p), (None, None))[0]
        if depth is not None and ((depth == 0 and embeddings) or 0 < depth <= layers):
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def adamw(model: nn.Module, lr: float, weight_decay: float = 0.01,
          betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6,
          layer_decay: float | None = None) -> torch.optim.AdamW:
    """AdamW over parameter_groups(model, weight_decay, layer_decay), each group starting at
    lr * its lr_scale (torch checks lr and weight_decay). The fused CPU/GPU kernel is used
    where available."""
    groups = parameter_groups(model, weight_decay, layer_decay)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # parameters on a device or dtype the fused kernel lacks
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def lr_factor(step: int, kind: str, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based).

    warmup: linear from 1/(warmup+1) to 1 over warmup_steps, then
      constant  stays at 1
      linear    falls linearly to 0 at total_steps
      cosine    half a cosine down to 0 at total_steps
      wsd       warmup-stable-decay: 1 until the last 20% of the steps, then linear to 0
                (MiniCPM, ModernBERT's trapezoid)
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_start = max(warmup_steps, int(total_steps * 0.8)) if kind == "wsd" else warmup_steps
    if kind == "constant" or step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress  # linear, wsd
