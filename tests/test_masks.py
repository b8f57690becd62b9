"""unmask.masks: constructors, combination, conversions, rendering, pictures.

Axes: B batch, H heads, Q queries, K keys, L sequence length. True = may attend.
Oracles: brute-force definitions written here index by index, and Hugging Face's own mask
builders (transformers.masking_utils / modeling_attn_mask_utils) where they exist.
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unmask import masks
from unmask.masks import Mask

THE_CAT = ["The", "cat", "sat", "PAD", "PAD"]

needs_hf = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="transformers (the oracle) missing"
)
try:
    from torch.nn.attention import flex_attention
except ImportError:  # torch < 2.5
    flex_attention = None
needs_flex = pytest.mark.skipif(flex_attention is None, reason="this torch has no FlexAttention")


def brute(n: int, rule) -> torch.Tensor:
    """(n, n) bool tensor with rule(i, j) at [i, j]: the definition, one cell at a time."""
    return torch.tensor([[bool(rule(i, j)) for j in range(n)] for i in range(n)])


# --- the Mask object --------------------------------------------------------------------

def test_mask_promotes_2d_and_reports_shape():
    m = Mask(torch.ones(3, 4, dtype=torch.bool))
    assert m.shape == (1, 1, 3, 4)
    assert m.allowed.shape == (1, 1, 3, 4)
    assert Mask(m).allowed is m.allowed


def test_mask_refuses_wrong_inputs_with_the_fix():
    with pytest.raises(TypeError, match="bool tensor.*padding"):
        Mask(torch.ones(2, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        Mask([[True]])
    with pytest.raises(ValueError, match=r"3-D \(B, Q, K\).*t\[:, None\]"):
        Mask(torch.ones(2, 3, 3, dtype=torch.bool))


def test_density_and_repr():
    m = masks.causal(4)
    assert m.density == pytest.approx(10 / 16)
    assert repr(m) == "Mask(shape=(1, 1, 4, 4), density=0.625)"


# --- rendering: the textbook pictures ---------------------------------------------------

def test_render_causal_4_exactly():
    expected = (
        " 0  -∞  -∞  -∞\n"
        " 0   0  -∞  -∞\n"
        " 0   0   0  -∞\n"
        " 0   0   0   0"
    )
    assert masks.causal(4).render() == expected
    assert str(masks.causal(4)) == expected


def test_render_causal_plus_padding_with_tokens_exactly():
    m = masks.causal(5) & masks.padding(torch.tensor([[1, 1, 1, 0, 0]]))
    expected = (
        "     The  cat  sat  PAD  PAD\n"
        "The    0   -∞   -∞   -∞   -∞\n"
        "cat    0    0   -∞   -∞   -∞\n"
        "sat    0    0    0   -∞   -∞\n"
        "PAD    0    0    0   -∞   -∞\n"
        "PAD    0    0    0   -∞   -∞"
    )
    assert m.render(THE_CAT) == expected


def test_render_separate_query_and_key_labels():
    m = Mask(torch.tensor([[True, False, True]]))
    assert m.render(query_labels=["q"], key_labels=["a", "bb", "ccc"]) == (
        "    a  bb  ccc\n"
        "q   0  -∞    0"
    )


def test_render_chooses_batch_and_head():
    allowed = torch.zeros(2, 3, 2, 2, dtype=torch.bool)
    allowed[1, 2, 0, 1] = True
    m = Mask(allowed)
    assert m.render(batch=1, head=2) == "-∞   0\n-∞  -∞"
    assert m.render() == "-∞  -∞\n-∞  -∞"
    with pytest.raises(IndexError, match="batch 2"):
        m.render(batch=2)
    # A broadcast (size-1) axis is the same everywhere: any index reads it.
    assert masks.causal(2).render(batch=5, head=3) == masks.causal(2).render()


def test_render_label_count_must_match():
    with pytest.raises(ValueError, match="3 row labels for 4 query"):
        masks.causal(4).render(["a", "b", "c"])


def test_str_of_a_large_mask_points_to_render():
    text = str(masks.causal(100))
    assert "too large" in text and ".render()" in text
    assert len(masks.causal(100).render().splitlines()) == 100


# --- constructors -----------------------------------------------------------------------

def test_padding_shape_and_values():
    am = torch.tensor([[1, 1, 0], [1, 1, 1]])
    m = masks.padding(am)
    assert m.shape == (2, 1, 1, 3)
    assert m.allowed[:, 0, 0].tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(masks.padding(am.bool()).allowed, m.allowed)
    assert torch.equal(masks.padding(am.float()).allowed, m.allowed)  # float 1./0. works too


def test_padding_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        masks.padding(torch.ones(1, 1, 1, 3))
    with pytest.raises(ValueError, match="only 1.*and 0"):
        masks.padding(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="additive.*from_hf"):
        masks.padding(torch.tensor([[0.0, float("-inf")]]))


def test_causal_and_full():
    assert torch.equal(masks.causal(6).allowed[0, 0], brute(6, lambda i, j: j <= i))
    assert masks.full(3, 5).shape == (1, 1, 3, 5) and bool(masks.full(3, 5).allowed.all())
    with pytest.raises(ValueError, match="positive int"):
        masks.causal(0)


@pytest.mark.parametrize("n,size", [(9, 4), (9, 5), (12, 0), (7, 100)])
def test_window_symmetric(n, size):
    half = size // 2
    assert torch.equal(masks.window(n, size).allowed[0, 0], brute(n, lambda i, j: abs(i - j) <= half))


@pytest.mark.parametrize("left,right", [(3, 0), (0, 2), (1, 4)])
def test_window_one_sided(left, right):
    got = masks.window(10, left=left, right=right).allowed[0, 0]
    assert torch.equal(got, brute(10, lambda i, j: i - left <= j <= i + right))


def test_window_errors():
    with pytest.raises(ValueError, match="not both"):
        masks.window(8, 4, left=1)
    with pytest.raises(ValueError, match="needs a size"):
        masks.window(8)
    with pytest.raises(ValueError, match=">= 0"):
        masks.window(8, left=-1)


def test_global_tokens_or_window():
    g = masks.global_tokens(8, [0, -1])
    assert torch.equal(g.allowed[0, 0], brute(8, lambda i, j: i in (0, 7) or j in (0, 7)))
    combined = masks.window(8, 2) | g
    expected = brute(8, lambda i, j: abs(i - j) <= 1 or i in (0, 7) or j in (0, 7))
    assert torch.equal(combined.allowed[0, 0], expected)
    with pytest.raises(ValueError, match=r"\[-8, 8\)"):
        masks.global_tokens(8, [8])


def test_block_sparse_structure_and_reproducibility():
    n, bs, r = 70, 8, 2  # 9 blocks, the last one partial
    m = masks.block_sparse(n, bs, window_blocks=1, global_blocks=1, random_blocks=r, seed=3)
    a = m.allowed[0, 0]
    assert a.shape == (n, n)
    nb = math.ceil(n / bs)
    layout = torch.zeros(nb, nb, dtype=torch.bool)
    for i in range(nb):
        for j in range(nb):
            block = a[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs]
            assert bool(block.all()) or not bool(block.any()), "blocks are all-or-nothing"
            layout[i, j] = bool(block.any())
    for i in range(nb):
        base = {j for j in range(nb) if abs(i - j) <= 1 or i == 0 or j == 0}
        got = {j for j in range(nb) if layout[i, j]}
        assert base <= got
        if i != 0:
            assert len(got - base) == r, "exactly `random_blocks` extra blocks per row"
    same = masks.block_sparse(n, bs, 1, 1, r, seed=3)
    other = masks.block_sparse(n, bs, 1, 1, r, seed=4)
    assert torch.equal(same.allowed, m.allowed)
    assert not torch.equal(other.allowed, m.allowed)


def test_block_sparse_named_global_blocks():
    m = masks.block_sparse(16, 4, window_blocks=0, global_blocks=[0, -1], random_blocks=0)
    layout = m.allowed[0, 0, ::4, ::4]
    assert torch.equal(layout, brute(4, lambda i, j: i == j or i in (0, 3) or j in (0, 3)))


def test_document_mask_and_padding_ids():
    ids = torch.tensor([[0, 0, 1, 1, 1, -1]])
    m = masks.document(ids)
    assert m.shape == (1, 1, 6, 6)
    ref = brute(6, lambda i, j: ids[0, i] == ids[0, j] and ids[0, i] >= 0)
    assert torch.equal(m.allowed[0, 0], ref)
    assert torch.equal(masks.document(ids[0]).allowed, m.allowed)  # (L,) works as one row
    with pytest.raises(ValueError, match="integer document ids"):
        masks.document(torch.zeros(2, 3))


def test_document_from_lengths_and_cu_seqlens_agree():
    by_lengths = masks.document_from_lengths([2, 3], total=6)
    by_cu = masks.document_from_lengths(cu_seqlens=[0, 2, 5], total=6)
    by_ids = masks.document(torch.tensor([[0, 0, 1, 1, 1, -1]]))
    assert torch.equal(by_lengths.allowed, by_ids.allowed)
    assert torch.equal(by_cu.allowed, by_ids.allowed)
    rows = masks.document_from_lengths([[2, 3], [4]])
    assert rows.shape == (2, 1, 5, 5)
    assert torch.equal(rows.allowed[1, 0], brute(5, lambda i, j: i < 4 and j < 4))
    with pytest.raises(ValueError, match="exactly one"):
        masks.document_from_lengths([1], cu_seqlens=[0, 1])
    with pytest.raises(ValueError, match="start at 0"):
        masks.document_from_lengths(cu_seqlens=[1, 3])
    with pytest.raises(ValueError, match="shorter"):
        masks.document_from_lengths([3, 3], total=5)


def test_prefix_lm_int_and_per_row():
    got = masks.prefix_lm(6, 3).allowed[0, 0]
    assert torch.equal(got, brute(6, lambda i, j: j <= i or j < 3))
    rows = masks.prefix_lm(5, torch.tensor([0, 5]))
    assert rows.shape == (2, 1, 5, 5)
    assert torch.equal(rows.allowed[0, 0], masks.causal(5).allowed[0, 0])
    assert bool(rows.allowed[1].all())
    with pytest.raises(ValueError, match="prefix_len"):
        masks.prefix_lm(4, 7)


# --- Hugging Face as the oracle -----------------------------------------------------------

def _hf_sdpa_mask(batch, n, fn, attention_mask=None):
    from transformers import masking_utils as mu

    return mu.sdpa_mask(
        batch_size=batch, q_length=n, kv_length=n, mask_function=fn,
        attention_mask=attention_mask, allow_is_causal_skip=False,
        allow_is_bidirectional_skip=False,
    )


@needs_hf
def test_causal_plus_padding_matches_transformers():
    from transformers import masking_utils as mu

    am = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    ours = masks.causal(5) & masks.padding(am)
    theirs = _hf_sdpa_mask(3, 5, mu.causal_mask_function, am.bool())
    assert torch.equal(ours.allowed.expand(3, 1, 5, 5), theirs)


@needs_hf
def test_windows_match_transformers():
    from transformers import masking_utils as mu

    n = 20
    # HF bidirectional window w: |i - j| <= w; ours: window(n, size) with size // 2 = w.
    theirs = _hf_sdpa_mask(1, n, mu.sliding_window_bidirectional_mask_function(3))
    assert torch.equal(masks.window(n, 6).allowed, theirs)
    # HF causal sliding window w: the last w keys including the query itself.
    theirs = _hf_sdpa_mask(1, n, mu.sliding_window_causal_mask_function(4))
    assert torch.equal(masks.window(n, left=3, right=0).allowed, theirs)


@needs_hf
def test_document_matches_transformers_packed_sequences():
    from transformers import masking_utils as mu

    ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2, 3]])
    fn = mu.and_masks(mu.bidirectional_mask_function, mu.packed_sequence_mask_function(ids))
    assert torch.equal(masks.document(ids).allowed, _hf_sdpa_mask(1, 10, fn))


@needs_hf
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_from_hf_reads_transformers_additive_masks(dtype):
    from transformers import masking_utils as mu

    am = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])

    def additive(fn):  # transformers' eager (additive) mask: (B, 1, Q, K), 0 or finfo.min
        return mu.eager_mask(batch_size=2, q_length=5, kv_length=5, mask_function=fn,
                             attention_mask=am.bool(), dtype=dtype)

    padded, causal = additive(mu.bidirectional_mask_function), additive(mu.causal_mask_function)
    assert padded.dtype == dtype and float(padded.min()) == torch.finfo(dtype).min
    assert torch.equal(masks.from_hf(padded).allowed, masks.padding(am).allowed.expand(2, 1, 5, 5))
    assert torch.equal(masks.from_hf(causal).allowed, (masks.causal(5) & masks.padding(am)).allowed)
    old_bert = (1.0 - am[:, None, None, :].to(dtype)) * -10000.0  # BERT's original constant
    assert torch.equal(masks.from_hf(old_bert).allowed, masks.padding(am).allowed)


def test_from_hf_other_forms():
    am = torch.tensor([[1, 0, 1]])
    assert torch.equal(masks.from_hf(am).allowed, masks.padding(am).allowed)
    three_d = torch.tensor([[[1, 0], [1, 1]]])  # (B, Q, K)
    assert masks.from_hf(three_d).shape == (1, 1, 2, 2)
    assert masks.from_hf(three_d).render() == " 0  -∞\n 0   0"
    inf_mask = torch.tensor([0.0, float("-inf")]).view(1, 1, 1, 2)
    assert masks.from_hf(inf_mask).allowed.tolist() == [[[[True, False]]]]
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        masks.from_hf(torch.ones(3))


# --- combination --------------------------------------------------------------------------

def _shapes():
    # Broadcast-compatible pairs of (B, H, Q, K) shapes: each axis of each mask is full or 1.
    dims = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5))
    return dims.flatmap(
        lambda full: st.tuples(
            st.tuples(*[st.sampled_from([d, 1]) for d in full]),
            st.tuples(*[st.sampled_from([d, 1]) for d in full]),
        )
    )


@settings(max_examples=60, deadline=None)
@given(shapes=_shapes(), seed=st.integers(0, 2**16))
def test_and_or_are_intersection_and_union(shapes, seed):
    gen = torch.Generator().manual_seed(seed)
    a_t = torch.rand(shapes[0], generator=gen) < 0.5
    b_t = torch.rand(shapes[1], generator=gen) < 0.5
    a, b = Mask(a_t), Mask(b_t)
    full = torch.broadcast_shapes(a.shape, b.shape)
    a_full, b_full = a_t.expand(full), b_t.expand(full)
    both, either = (a & b).allowed, (a | b).allowed
    assert both.shape == either.shape == full
    for idx in torch.cartesian_prod(*[torch.arange(d) for d in full]).tolist():
        idx = tuple(idx)
        assert bool(both[idx]) == (bool(a_full[idx]) and bool(b_full[idx]))
        assert bool(either[idx]) == (bool(a_full[idx]) or bool(b_full[idx]))
    assert torch.equal((~a).allowed, ~a_t)
    assert torch.equal((a & b_t).allowed, both)  # a bool tensor on the right works too


def test_combining_wrong_shapes_names_both_and_the_layout():
    with pytest.raises(ValueError) as err:
        masks.causal(4) & masks.padding(torch.ones(2, 5, dtype=torch.long))
    text = str(err.value)
    assert "(1, 1, 4, 4)" in text and "(2, 1, 1, 5)" in text and "(B, H|1, Q, K)" in text


def test_check_broadcast_and_resolve():
    masks.check_broadcast((2, 1, 1, 5), (2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(2, 1, 1, 5\).*\(3, 4, 5, 5\).*\(B, H\|1, Q, K\)"):
        masks.check_broadcast((2, 1, 1, 5), (3, 4, 5, 5))
    assert masks.resolve(None, (2, 4, 5, 5)) is None
    two_d = masks.resolve(torch.ones(5, 5, dtype=torch.bool), (2, 4, 5, 5))
    assert two_d.shape == (1, 1, 5, 5)
    with pytest.raises(TypeError, match="must be boolean.*from_hf"):
        masks.resolve(torch.ones(5, 5), (2, 4, 5, 5))


def test_constructors_refuse_masks_too_large_to_build(monkeypatch):
    # causal(10**6) once tried to allocate 1 TB; now every (L, L) constructor says the size.
    with pytest.raises(masks.MaskTooLarge, match=r"causal\(1000000\).*\(1,862\.6 GiB\).*MAX_MASK"):
        masks.causal(10**6)
    monkeypatch.setattr(masks, "MAX_MASK_BYTES", 500)  # 30 x 30 bools are too many
    for build in (lambda: masks.full(30), lambda: masks.window(30, 4),
                  lambda: masks.global_tokens(30, [0]), lambda: masks.block_sparse(30, 4),
                  lambda: masks.prefix_lm(30, 3), lambda: masks.document(torch.zeros(2, 30, dtype=torch.long)),
                  lambda: masks.document_from_lengths([10, 20])):
        with pytest.raises(ValueError, match="over the limit of 500 bytes"):
            build()
    assert masks.causal(15).shape == (1, 1, 15, 15)  # 450 bytes: fine


# --- conversions --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_to_additive_is_zero_or_minus_inf_and_softmax_safe(dtype):
    m = masks.causal(4) & masks.padding(torch.tensor([[1, 1, 1, 0]]))
    add = m.to_additive(dtype)
    assert add.dtype == dtype and add.shape == m.shape
    assert bool((add[m.allowed] == 0).all())
    assert bool(torch.isneginf(add[~m.allowed]).all())
    # Large negative scores + -inf stay -inf (no overflow to NaN) and softmax is exact.
    scores = torch.full((1, 1, 4, 4), -60000.0 if dtype == torch.float16 else -1e30).to(dtype)
    probs = torch.softmax((scores + add).float(), dim=-1)
    assert not bool(probs.isnan().any())
    assert torch.equal(probs[0, 0, 1], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(TypeError, match="floating"):
        m.to_additive(torch.int32)


def test_bool_and_additive_masks_agree_in_torch_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    m = masks.window(6, 2) & masks.padding(torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]]))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    a = sdpa(q, k, v, attn_mask=m.allowed)
    b = sdpa(q, k, v, attn_mask=m.to_additive(torch.float32))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def _flex(q, k, v, block_mask):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "called without torch.compile"
        return flex_attention.flex_attention(q, k, v, block_mask=block_mask)


@needs_flex
def test_to_block_mask_equals_the_mask_in_flex_attention():
    torch.manual_seed(0)
    n = 300  # not a multiple of the 64 tile
    am = torch.ones(2, n, dtype=torch.long)
    am[1, 250:] = 0
    m = (masks.window(n, 40) | masks.global_tokens(n, [0])) & masks.padding(am)
    q, k, v = (torch.randn(2, 2, n, 16) for _ in range(3))
    out = _flex(q, k, v, m.to_block_mask(64))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m.allowed)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@needs_flex
def test_to_block_mask_skips_empty_tiles():
    bm = masks.window(512, 64).to_block_mask(128)
    partial = bm.kv_num_blocks[0, 0].tolist()
    full_tiles = bm.full_kv_num_blocks[0, 0].tolist()
    # A +-32 window touches the diagonal tile and its neighbours only: 2 or 3 of 4 tiles.
    assert [p + f for p, f in zip(partial, full_tiles)] == [2, 3, 3, 2]
    assert masks.full(256).to_block_mask(128).full_kv_num_blocks[0, 0].tolist() == [2, 2]


@needs_flex
def test_to_block_mask_of_a_padding_mask_needs_the_query_length():
    torch.manual_seed(0)
    am = torch.tensor([[1] * 10 + [0] * 6, [1] * 16])
    q, k, v = (torch.randn(2, 1, 16, 8) for _ in range(3))
    bm = masks.padding(am).to_block_mask(8, q_len=16)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=masks.padding(am).allowed
    )
    torch.testing.assert_close(_flex(q, k, v, bm), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="q_len=5"):
        masks.causal(16).to_block_mask(8, q_len=5)


# --- pictures -----------------------------------------------------------------------------

def test_save_mask_png(tmp_path):
    import matplotlib.image

    from unmask import viz

    m = masks.causal(5) & masks.padding(torch.tensor([[1, 1, 1, 0, 0]]))
    path = viz.save_mask_png(m, tmp_path / "mask.png", labels=THE_CAT)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    colours = {tuple(px) for px in (img[..., :3] * 255).round().astype(int).reshape(-1, 3)}
    assert (0x1F, 0x4E, 0x79) in colours and (0xEE, 0xF1, 0xF5) in colours  # allowed, forbidden
    viz.save_mask_png(torch.ones(3, 3, dtype=torch.bool), tmp_path / "plain.png")
    assert (tmp_path / "plain.png").stat().st_size > 0
    with pytest.raises(ValueError, match="labels"):
        viz.save_mask_png(m, tmp_path / "bad.png", labels=["a"])
