"""Dropout with cheap random bits on the CPU.

torch's CPU dropout draws one Mersenne-Twister number per element (bernoulli_), a visible
share of a BERT-mini pretraining step (benchmarks/RESULTS.md, "Timings moved out of
docstrings"). Here the keep-mask comes from numpy's PCG64 as 16-bit integers, several times
cheaper, seeded by one draw from torch's default generator: torch.manual_seed still makes
runs reproducible, and checkpoints that save torch's RNG state resume the same masks. On other
devices this is F.dropout (GPU generators are fast).

The keep probability is 1 - round(p * 65536) / 65536, within 1e-5 of 1 - p.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# integers as wide as each float dtype, to write a float's bit pattern
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def keep_scale(shape: torch.Size | tuple[int, ...], p: float,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Tensor of `shape` and `dtype` on the CPU: 1 / (1 - p) (rounded to dtype) with
    probability ~1 - p, else 0. numpy writes the scale's bit pattern straight into the
    result: a bool mask converted and scaled by torch cost two more passes per call."""
    seed = int(torch.randint(0, 2**62, ()))  # from torch's generator: reproducible
    bits = np.random.Generator(np.random.PCG64(seed)).integers(
        0, 65536, size=tuple(shape), dtype=np.uint16)
    scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype)
    pattern = scale.view(_BITS[scale.element_size()]).numpy()  # 0-d, the scale's bits
    values = np.where(bits >= round(p * 65536), pattern, np.zeros_like(pattern))
    return torch.from_numpy(values).view(dtype)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero each element of x with probability p and scale the rest by 1 / (1 - p)."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training=True)
    return x * keep_scale(x.shape, p, x.dtype)


class Dropout(nn.Dropout):
    """nn.Dropout (same attribute p, same train/eval switch) using `dropout` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
