"""Cross-entropy over a large vocabulary in one pass: loss sum, hits and gradient together.

The MLM decoder yields bf16 logits (N, V) with V = 30,522. F.cross_entropy(logits.float())
then writes a float32 copy, log-probabilities, a zero-filled gradient and its bf16 cast,
and accuracy needs another argmax: six passes over ~150 MB per step, 27% of a BERT-mini
pretraining step on two CPU cores (measured). Here each block of rows is converted to
float32 while it is in cache, and the gradient d(sum of losses)/d(logits) = softmax - onehot
is written right away in the logits' dtype; backward only scales it. Measured on (1229,
30522) bf16 logits: forward + backward 100 ms against 340 ms (F.cross_entropy + argmax).
"""

from __future__ import annotations

import torch

_ROWS = 16  # a block of 16 rows of float32 logits (1.9 MB at V = 30,522) stays in cache


class _SumCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor):
        want_grad = ctx.needs_input_grad[0]
        grad = torch.empty_like(logits) if want_grad else None
        loss = torch.zeros((), dtype=torch.float32, device=logits.device)
        hits = torch.zeros((), dtype=torch.int64, device=logits.device)
        for start in range(0, logits.shape[0], _ROWS):
            block = logits[start:start + _ROWS].float()  # (r, V)
            t = targets[start:start + _ROWS]  # (r,)
            top, best = block.max(dim=-1)  # (r,) each
            block.sub_(top[:, None])
            exp = block.exp()
            total = exp.sum(dim=-1)  # (r,)
            loss += (total.log() - block.gather(1, t[:, None]).squeeze(1)).sum()
            hits += (best == t).sum()
            if want_grad:
                exp.div_(total[:, None])
                exp[torch.arange(len(t), device=t.device), t] -= 1.0
                grad[start:start + _ROWS] = exp
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(hits)
        return loss, hits

    @staticmethod
    def backward(ctx, grad_loss, _grad_hits):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None


def sum_cross_entropy(logits: torch.Tensor, targets: torch.Tensor):
    """logits float (N, V), targets int64 (N,) in [0, V) ->
    (loss float32 scalar: sum over rows of -log softmax(logits)[target], differentiable;
     hits int64 scalar: rows whose largest logit is the target, first one on ties).

    Equals F.cross_entropy(logits.float(), targets, reduction="sum") and
    (logits.argmax(-1) == targets).sum(), computed in float32 whatever the logits' dtype.
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, V) and targets (N,), got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    return _SumCrossEntropy.apply(logits, targets)
