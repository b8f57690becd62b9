"""Cross-entropy over a large vocabulary in one pass: loss sum, hits and gradient together.

F.cross_entropy(logits.float()) on the MLM decoder's bf16 logits (N, V) writes a float32 copy,
log-probabilities, a zero-filled gradient and its bf16 cast, and accuracy needs another
argmax: six passes over the step's largest tensor. Here each block of rows is converted to
float32 while it is in cache, and the gradient d(sum of losses)/d(logits) = softmax - onehot
is written right away in the logits' dtype; backward only scales it.

linear_cross_entropy fuses the decoder too (hidden @ weight.T + bias, then the loss): the
logits live in one buffer reused from step to step and overwritten by their own gradient, so
a step allocates (and page-faults in) no N x V tensor, and backward scales the small (N, E)
and (V, E) products instead of the (N, V) gradient. Timings: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import torch

_ROWS = 16  # a block of 16 rows of float32 logits (1.9 MB at V = 30,522) stays in cache


def _blockwise(logits: torch.Tensor, targets: torch.Tensor, grad_out: torch.Tensor | None,
               grad_bias: torch.Tensor | None = None):
    """Loss sum and hits of logits (N, V); softmax - onehot into grad_out (N, V), which may
    be `logits` itself (each block is read before it is overwritten), and its column sums
    added to grad_bias float32 (V,) (summing the bf16 gradient afterwards would convert all
    of it to float32 again).

    Each block is copied into one float32 buffer and torch's fused softmax kernel writes the
    probabilities into a second. The loss needs log-sum-exp, which softmax does not return,
    but the largest probability is exp(0) / sum: log-sum-exp = top - log(max prob), exact
    for every row (no underflow where the target's probability is tiny)."""
    n, v = logits.shape
    loss = torch.zeros((), dtype=torch.float32, device=logits.device)
    hits = torch.zeros((), dtype=torch.int64, device=logits.device)
    scratch = torch.empty(2, min(n, _ROWS), v, dtype=torch.float32, device=logits.device)
    rows = torch.arange(scratch.shape[1], device=logits.device)
    for start in range(0, n, _ROWS):
        t = targets[start:start + _ROWS]  # (r,)
        r = rows[:len(t)]
        block, probs = scratch[0, :len(t)], scratch[1, :len(t)]  # (r, V) each
        block.copy_(logits[start:start + _ROWS])
        top = block.amax(dim=-1)  # (r,); 10x cheaper than max(dim) with its indices
        picked = block[r, t]  # (r,) target logit
        if block.device.type == "cpu":
            tied = picked == top  # target among the largest: a hit if it is the first of them
            if tied.any():
                hits += (block[tied].argmax(dim=-1) == t[tied]).sum()
        else:  # tied.any() would wait for the GPU once per block
            hits += (block.argmax(dim=-1) == t).sum()
        torch.softmax(block, dim=-1, out=probs)
        loss += (top - probs.amax(dim=-1).log() - picked).sum()
        if grad_out is not None:
            probs[r, t] -= 1.0
            grad_out[start:start + _ROWS] = probs
            if grad_bias is not None:
                grad_bias += probs.sum(dim=0)
    return loss, hits


class _SumCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor):
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        loss, hits = _blockwise(logits, targets, grad)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(hits)
        return loss, hits

    @staticmethod
    def backward(ctx, grad_loss, _grad_hits):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None


def _check(logits_shape, targets: torch.Tensor) -> None:
    if len(logits_shape) != 2 or targets.shape != logits_shape[:1]:
        raise ValueError(f"logits must be (N, V) and targets (N,), got {tuple(logits_shape)} "
                         f"and {tuple(targets.shape)}")


def sum_cross_entropy(logits: torch.Tensor, targets: torch.Tensor):
    """logits float (N, V), targets int64 (N,) in [0, V) ->
    (loss float32 scalar: sum over rows of -log softmax(logits)[target], differentiable;
     hits int64 scalar: rows whose largest logit is the target, first one on ties).

    Equals F.cross_entropy(logits.float(), targets, reduction="sum") and
    (logits.argmax(-1) == targets).sum(), computed in float32 whatever the logits' dtype.
    """
    _check(logits.shape, targets)
    return _SumCrossEntropy.apply(logits, targets)


# Spare logits buffers, by (dtype, device): taken by a forward, given back by its backward,
# so two decoders in flight at once never share one.
_spare: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _take(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    buffer = _spare.pop((dtype, device), None)
    if buffer is None or buffer.numel() < numel:
        # 25% headroom: the number of masked rows varies a little from step to step
        buffer = torch.empty(numel + numel // 4, dtype=dtype, device=device)
    return buffer


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, dtype):
        x, w = hidden.to(dtype), weight.to(dtype)
        n, v = x.shape[0], w.shape[0]
        storage = _take(n * v, dtype, x.device)
        logits = storage[:n * v].view(n, v)
        if bias is None:
            torch.mm(x, w.t(), out=logits)
        else:  # the bias added inside the matmul, in its dtype, as F.linear does
            torch.addmm(bias.to(dtype), x, w.t(), out=logits)
        want_grad = any(ctx.needs_input_grad[:3])
        grad_b = torch.zeros(v, dtype=torch.float32, device=x.device) \
            if ctx.needs_input_grad[2] else None
        loss, hits = _blockwise(logits, targets, logits if want_grad else None, grad_b)
        if want_grad:
            ctx.save_for_backward(x, w, logits, grad_b)
            ctx.storage = storage
            ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        else:
            _spare[(dtype, x.device)] = storage
        ctx.mark_non_differentiable(hits)
        return loss, hits

    @staticmethod
    def backward(ctx, grad_loss, _grad_hits):
        if ctx.storage is None:
            raise RuntimeError("linear_cross_entropy allows one backward per forward (its logits "
                               "buffer is reused by the next call); recompute the loss rather "
                               "than backward twice with retain_graph=True")
        x, w, grad, grad_b = ctx.saved_tensors  # grad: d(loss sum)/d(logits), (N, V)
        scale = grad_loss.float()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ w).to(ctx.dtypes[0]).mul_(scale)  # (N, E)
        if ctx.needs_input_grad[1]:
            grad_w = (grad.t() @ x).to(ctx.dtypes[1]).mul_(scale)  # (V, E)
        if grad_b is not None:
            grad_b = (grad_b * scale).to(ctx.dtypes[2])  # (V,)
        _spare[(x.dtype, x.device)] = ctx.storage
        ctx.storage = None
        return grad_x, grad_w, grad_b, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         targets: torch.Tensor):
    """Decoder and loss in one: hidden (N, E), weight (V, E), bias (V,) or None, targets
    int64 (N,) -> (loss sum float32 scalar, hits int64 scalar), as
    sum_cross_entropy(F.linear(hidden, weight, bias), targets).

    Under autocast the matmul runs in the autocast dtype (as F.linear would); the gradients
    come back in each input's own dtype. The logits are never returned: they are
    overwritten by their gradient in a reused buffer.
    """
    _check((hidden.shape[0], weight.shape[0]), targets)
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) \
        else hidden.dtype
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, dtype)
