"""unmask.attention: every backend equals the eager reference, and empty rows are zeros.

Axes: B batch, H heads, Q queries, K keys, D head dim. Masks: bool, True = may attend.
The reference is written out here once more (softmax in float64) so that the "eager" kernel
itself is checked too, and Hugging Face's BERT eager attention serves as an outside oracle.
"""

from __future__ import annotations

import importlib.util
import math
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unmask import attention as attn
from unmask import masks
from unmask.attention import BACKENDS, attention, attention_flex, attention_sparse

try:
    from torch.nn.attention import flex_attention
except ImportError:  # torch < 2.5
    flex_attention = None
needs_flex = pytest.mark.skipif(flex_attention is None, reason="this torch has no FlexAttention")
AVAILABLE = [b for b in BACKENDS if b != "flex" or flex_attention is not None]


def reference(q, k, v, allowed: torch.Tensor | None, bias=None, scale=None, probs=False):
    """softmax(QK^T * scale + bias + M) V in float64; a row with no allowed key is zeros."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) * (scale or 1 / math.sqrt(q.shape[-1]))
    if bias is not None:
        scores = scores + bias.double()
    if allowed is None:
        weights = torch.softmax(scores, -1)
    else:
        allowed = allowed.expand_as(scores)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
        weights = torch.where(allowed.any(-1, keepdim=True), weights, torch.zeros_like(weights))
    return (weights @ v, weights) if probs else weights @ v


def qkv(b, h, q_len, k_len, d, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, q_len, d, generator=gen).to(dtype),
        torch.randn(b, h, k_len, d, generator=gen).to(dtype),
        torch.randn(b, h, k_len, d, generator=gen).to(dtype),
    )


# --- agreement on random masks (hypothesis) -------------------------------------------

@st.composite
def problems(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    q_len, k_len = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    # The mask may broadcast over batch, heads or queries (a padding mask).
    shape = (
        draw(st.sampled_from([b, 1])),
        draw(st.sampled_from([h, 1])),
        draw(st.sampled_from([q_len, 1])),
        k_len,
    )
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    allowed = torch.rand(shape, generator=gen) < density
    if draw(st.booleans()) and shape[2] > 1:
        allowed[..., 0, :] = False  # a query row with no allowed key
    block = draw(st.sampled_from([4, 8, 16, 64]))
    return qkv(b, h, q_len, k_len, 8, seed), allowed, block


@settings(max_examples=40, deadline=None)
@given(problem=problems())
def test_backends_agree_with_reference_on_random_masks(problem):
    (q, k, v), allowed, block = problem
    ref = reference(q, k, v, allowed).float()
    outs = {
        "eager": attention(q, k, v, allowed, backend="eager"),
        "sdpa": attention(q, k, v, allowed, backend="sdpa"),
        "sparse": attention_sparse(q, k, v, allowed, block_size=block),
    }
    if flex_attention is not None:
        # Uncompiled flex is slow on tiny tiles; its tiling is not what is tested here.
        outs["flex"] = attention_flex(q, k, v, allowed, block_size=64, compile=False)
    for name, out in outs.items():
        assert out.shape == q.shape, name
        assert not bool(out.isnan().any()), name
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5, msg=f"backend {name}")


@pytest.mark.parametrize("backend", AVAILABLE)
def test_all_masked_rows_are_zero_not_nan_float32_and_bf16(backend):
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = qkv(2, 2, 6, 6, 16, dtype=dtype)
        m = masks.causal(6) & masks.padding(torch.tensor([[1] * 6, [0, 1, 1, 1, 1, 1]]))
        out = attention(q, k, v, m, backend=backend)  # batch 1, query 0 sees no key
        assert out.dtype == dtype
        assert not bool(out.isnan().any())
        assert bool((out[1, :, 0] == 0).all())
        ref = reference(q, k, v, m.allowed)
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
        nothing = masks.Mask(torch.zeros(6, 6, dtype=torch.bool))
        assert bool((attention(q, k, v, nothing, backend=backend) == 0).all())


@pytest.mark.parametrize("backend", ["sdpa", "sparse"])
def test_gradients_match_eager_and_stay_finite(backend):
    q, k, v = qkv(1, 2, 10, 10, 8, seed=1)
    allowed = masks.window(10, 4).allowed.clone()
    allowed[..., 3, :] = False  # an empty row must not poison the gradients with NaN
    grads = {}
    for name in ("eager", backend):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        attention(*leaves, allowed, backend=name).square().sum().backward()
        grads[name] = [t.grad for t in leaves]
    for got, want in zip(grads[backend], grads["eager"]):
        assert not bool(got.isnan().any())
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_no_mask_cross_attention_and_mask_forms(backend):
    q, k, v = qkv(2, 2, 5, 9, 8)  # Q != K
    ref = reference(q, k, v, None).float()
    torch.testing.assert_close(attention(q, k, v, None, backend=backend), ref, atol=1e-5, rtol=1e-5)
    two_d = torch.rand(5, 9, generator=torch.Generator().manual_seed(2)) < 0.5  # (Q, K)
    ref = reference(q, k, v, two_d[None, None]).float()
    for mask in (two_d, masks.Mask(two_d)):
        out = attention(q, k, v, mask, backend=backend)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_sliding_window_long_sequence_sparse_equals_dense():
    q, k, v = qkv(1, 2, 1000, 1000, 32)
    m = masks.window(1000, 128) | masks.global_tokens(1000, [0])
    dense = attention(q, k, v, m, backend="sdpa")
    torch.testing.assert_close(attention(q, k, v, m, backend="sparse"), dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention(q, k, v, m, backend="eager"), dense, atol=1e-5, rtol=1e-5)


def test_sparse_attends_over_only_the_needed_key_blocks(monkeypatch):
    seen = []
    real = attn._sdpa

    def spy(q, k, v, allowed, **kwargs):
        seen.append(tuple(k.shape))
        return real(q, k, v, allowed, **kwargs)

    monkeypatch.setattr(attn, "_sdpa", spy)
    q, k, v = qkv(1, 2, 1024, 1024, 16)
    attention_sparse(q, k, v, masks.window(1024, 128), block_size=64)
    # A +-64 window needs the block itself and one on each side: 3 * 64 keys, not 1024.
    assert seen == [(2, 16, 192, 16)]
    # Gathered K / V are bounded: with room for 5 query blocks at a time, chunks of 5 blocks.
    seen.clear()
    monkeypatch.setattr(attn, "_GATHER_BYTES", 5 * 2 * 192 * (16 + 16) * 4)
    out = attention_sparse(q, k, v, masks.window(1024, 128), block_size=64)
    assert seen == [(2, 5, 192, 16)] * 3 + [(2, 1, 192, 16)]
    ref = reference(q, k, v, masks.window(1024, 128).allowed).float()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(problem=problems(), budget=st.integers(1, 4096))
def test_sparse_in_small_chunks_equals_the_reference(problem, budget):
    # Any chunking of the query blocks (down to one block per chunk) gives the same result.
    (q, k, v), allowed, block = problem
    old = attn._GATHER_BYTES
    attn._GATHER_BYTES = budget
    try:
        out = attention_sparse(q, k, v, allowed, block_size=block)
    finally:
        attn._GATHER_BYTES = old
    torch.testing.assert_close(out, reference(q, k, v, allowed).float(), atol=1e-5, rtol=1e-5)


def test_bert_eager_attention_from_transformers_agrees():
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers (the oracle) missing")
    from transformers.models.bert.modeling_bert import eager_attention_forward

    q, k, v = qkv(2, 4, 7, 7, 16, seed=5)
    am = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]])
    m = masks.padding(am)
    module = torch.nn.Module().eval()
    theirs, _ = eager_attention_forward(
        module, q, k, v, m.to_additive(torch.float32), scaling=16 ** -0.5, dropout=0.0
    )  # (B, Q, H, D)
    for backend in AVAILABLE:
        ours = attention(q, k, v, m, backend=backend).transpose(1, 2)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=backend)


# --- bias, scale, probabilities, dropout ----------------------------------------------------

@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_score_bias_and_scale_enter_the_softmax(backend):
    # The hook DeBERTa-style relative positions use: an additive (B|1, H|1, Q, K) bias.
    q, k, v = qkv(2, 3, 6, 6, 8, seed=4)
    bias = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    m = masks.causal(6) & masks.padding(torch.tensor([[1] * 6, [0] + [1] * 5]))  # one empty row
    out = attention(q, k, v, m, backend, bias=bias, scale=0.1)
    ref = reference(q, k, v, m.allowed, bias, 0.1).float()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert (out - attention(q, k, v, m, backend)).abs().max() > 1e-2  # the bias mattered
    with pytest.raises(ValueError, match="score bias of shape"):
        attention(q, k, v, m, backend, bias=bias[..., :5])


def test_probabilities_come_with_any_backend_and_sum_to_one():
    q, k, v = qkv(2, 2, 5, 5, 8, seed=6)
    m = masks.causal(5) & ~masks.global_tokens(5, [2])  # rows see no key at 2; row 2 sees none
    want_out, want_probs = reference(q, k, v, m.allowed, probs=True)
    for backend in AVAILABLE:
        with torch.no_grad():
            out, probs = attention(q, k, v, m, backend, return_probs=True)
        torch.testing.assert_close(probs.double(), want_probs, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(out.double(), want_out, atol=1e-5, rtol=1e-5)
        assert bool((probs[:, :, 2] == 0).all())


@pytest.mark.parametrize("grad", [False, True])
def test_dropout_on_the_probabilities(grad):
    # grad=True takes CPU training's written-out path, False torch's SDPA dropout.
    q, k, v = (t.requires_grad_(grad) for t in qkv(1, 2, 32, 32, 8, seed=7))
    ref = attention(q, k, v, masks.causal(32))
    torch.manual_seed(0)
    a = attention(q, k, v, masks.causal(32), dropout_p=0.5)
    torch.manual_seed(0)
    assert torch.equal(a, attention(q, k, v, masks.causal(32), dropout_p=0.5))  # seeded
    assert not bool(a.isnan().any()) and (a - ref).abs().max() > 1e-2
    with pytest.raises(ValueError, match=r"dropout_p must lie in \[0, 1\)"):
        attention(q, k, v, None, dropout_p=1.0)


# --- errors that name the problem and the fix ---------------------------------------------

def test_errors_are_clear():
    q, k, v = qkv(2, 2, 4, 4, 8)
    with pytest.raises(ValueError, match="unknown attention backend 'fast'.*eager, sdpa, sparse"):
        attention(q, k, v, None, backend="fast")
    with pytest.raises(TypeError, match="must be boolean.*from_hf"):
        attention(q, k, v, torch.ones(2, 1, 1, 4))
    with pytest.raises(ValueError, match=r"\(3, 1, 1, 4\).*\(2, 2, 4, 4\).*\(B, H\|1, Q, K\)"):
        attention(q, k, v, torch.ones(3, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"4-D \(B, H, L, D\)"):
        attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="do not fit together"):
        attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="block_size"):
        attention_sparse(q, k, v, masks.causal(4), block_size=0)


@needs_flex
def test_flex_backward_on_cpu_is_refused_with_the_fix():
    q, k, v = (t.requires_grad_() for t in qkv(1, 1, 4, 4, 8))
    with pytest.raises(NotImplementedError, match="backend='sdpa' or 'sparse'"):
        attention(q, k, v, masks.causal(4), backend="flex")
    with torch.no_grad():  # inference on CPU is fine
        attention(q, k, v, masks.causal(4), backend="flex")


# --- FlexAttention ------------------------------------------------------------------------

@needs_flex
def test_flex_accepts_a_ready_block_mask():
    q, k, v = qkv(1, 2, 200, 200, 16)
    m = masks.window(200, 32) & masks.padding(torch.tensor([[1] * 180 + [0] * 20]))
    out = attention_flex(q, k, v, m.to_block_mask(64), compile=False)
    torch.testing.assert_close(out, reference(q, k, v, m.allowed).float(), atol=1e-5, rtol=1e-5)


@needs_flex
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_flex_on_cpu_is_correct_off_the_128_tile():
    # torch's compiled CPU kernel alone is wrong for lengths such as 40; unmask pads to the tile.
    q, k, v = qkv(2, 2, 40, 40, 16, seed=3)
    am = torch.tensor([[1] * 30 + [0] * 10, [1] * 40])
    m = masks.causal(40) & masks.padding(am) & ~masks.global_tokens(40, [3])  # row 3: empty
    out = attention_flex(q, k, v, m, compile=True)
    assert not bool(out.isnan().any())
    torch.testing.assert_close(out, reference(q, k, v, m.allowed).float(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="multiples of 128"):
        attention_flex(q, k, v, m.to_block_mask(128), compile=True)
