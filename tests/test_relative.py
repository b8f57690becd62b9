"""DeBERTa's relative-position terms against transformers' DisentangledSelfAttention."""

import math

import pytest
import torch

from unmask.relative import log_buckets, relative_bias, relative_index

M = pytest.importorskip("transformers.models.deberta_v2.modeling_deberta_v2")


@pytest.mark.parametrize("buckets, max_position", [(256, 512), (32, 64), (64, 512)])
def test_log_buckets_match_transformers(buckets, max_position):
    d = torch.arange(-2000, 2000)
    assert torch.equal(log_buckets(d, buckets, max_position),
                       M.make_log_bucket_position(d, buckets, max_position).long())


def test_index_counts_each_packed_document_from_its_own_positions():
    pos = torch.tensor([[0, 1, 2, 0, 1]])  # two documents packed in one row
    idx = relative_index(pos, span=4)
    assert idx.shape == (1, 5, 5)
    assert idx[0, 2, 0] == 4 + 2 and idx[0, 4, 3] == 4 + 1 and idx[0, 3, 2] == 4 - 2
    far = relative_index(torch.arange(40), span=4)
    assert far.min() == 0 and far.max() == 7  # clamped to the table


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("terms", [["c2p", "p2c"], ["c2p"], ["p2c"]])
def test_scores_match_disentangled_self_attention(share, terms):
    torch.manual_seed(0)
    b, n, h, nh = 2, 20, 64, 4
    hd, span, max_position = h // nh, 8, 32
    cfg = M.DebertaV2Config(hidden_size=h, num_attention_heads=nh, relative_attention=True,
                            position_buckets=span, max_relative_positions=max_position,
                            pos_att_type=terms, share_att_key=share, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0)
    attn = M.DisentangledSelfAttention(cfg).eval()
    x, table = torch.randn(b, n, h), torch.randn(2 * span, h)
    rel = M.build_relative_position(x, x, bucket_size=span, max_position=max_position)
    with torch.no_grad():
        want, want_probs = attn(x, torch.ones(b, 1, n, n, dtype=torch.bool),
                                output_attentions=True, relative_pos=rel, rel_embeddings=table)

        def heads(t):  # (..., H) -> (..., nh, hd) -> heads first
            return t.view(*t.shape[:-1], nh, hd).transpose(-3, -2)

        q, k, v = heads(attn.query_proj(x)), heads(attn.key_proj(x)), heads(attn.value_proj(x))
        key_proj = attn.key_proj if share else getattr(attn, "pos_key_proj", None)
        query_proj = attn.query_proj if share else getattr(attn, "pos_query_proj", None)
        pos_k = heads(key_proj(table)) if "c2p" in terms else None
        pos_q = heads(query_proj(table)) if "p2c" in terms else None
        scale = 1 / math.sqrt(hd * (1 + len(terms)))
        index = relative_index(torch.arange(n), span, span, max_position)
        scores = q @ k.transpose(-1, -2) * scale + relative_bias(q, k, index, pos_k, pos_q, scale)
        probs = scores.softmax(-1)
        got = (probs @ v).transpose(1, 2).reshape(b, n, h)
    torch.testing.assert_close(probs, want_probs, atol=1e-6, rtol=0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
