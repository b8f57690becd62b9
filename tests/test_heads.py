"""unmask.heads: each head's shapes and arithmetic, and each task model's loss against the
same loss computed by hand from its logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from test_model import CONFIGS, V, _batch, _close
from unmask.heads import (
    Embedder,
    MaskedLM,
    MaskedLMHead,
    QuestionAnswering,
    QuestionAnsweringHead,
    ReplacedTokenDetector,
    ReplacedTokenHead,
    SequenceClassificationHead,
    SequenceClassifier,
    TokenClassifier,
    pool,
)

H = CONFIGS["bert"].hidden_size


def _mlm(seed=0):
    torch.manual_seed(seed)
    return MaskedLM(CONFIGS["bert"]).eval()


# --- heads alone -----------------------------------------------------------------------------

def test_mlm_head_is_dense_gelu_norm_then_the_tied_decoder():
    torch.manual_seed(0)
    head = MaskedLMHead(H, V, embedding_size=16)
    hidden, word = torch.randn(2, 5, H), torch.randn(V, 16)
    t = head.transform
    want = F.linear(F.layer_norm(F.gelu(t.dense(hidden)), (16,), t.norm.weight, t.norm.bias,
                                 1e-12), word, head.bias)
    _close(head(hidden, word), want, "mlm logits")
    assert head(hidden, word).shape == (2, 5, V)
    untied = MaskedLMHead(H, V, tied=False)
    assert untied.decoder_weight(word) is untied.decoder.weight


def test_sequence_head_pools_then_classifies():
    torch.manual_seed(0)
    head = SequenceClassificationHead(H, 3, pooling="mean", dropout=0.0).eval()
    hidden = torch.randn(2, 4, H)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    want = head.out(torch.tanh(head.dense.dense(pooled)))
    _close(head(hidden, mask), want, "sequence logits")
    assert head.spec()["pooling"] == "mean"
    with pytest.raises(ValueError, match="'cls' or 'mean'"):
        SequenceClassificationHead(H, 3, pooling="max")


def test_qa_and_replaced_token_heads_give_one_logit_per_token_and_role():
    torch.manual_seed(0)
    hidden = torch.randn(2, 6, H)
    qa = QuestionAnsweringHead(H, dropout=0.0)
    start, end = qa(hidden)
    both = qa.out(hidden)  # (B, L, 2): column 0 starts, column 1 ends
    assert start.shape == end.shape == (2, 6)
    assert torch.equal(start, both[..., 0]) and torch.equal(end, both[..., 1])
    assert "num_labels" not in qa.spec()
    rtd = ReplacedTokenHead(H)
    _close(rtd(hidden), rtd.out(F.gelu(rtd.dense.dense(hidden))).squeeze(-1), "rtd logits")


# --- task models and their losses --------------------------------------------------------------

def test_mlm_masked_only_matches_full_logits_and_loss():
    model = _mlm()
    ids, mask = _batch([12, 7])
    labels = torch.full_like(ids, -100)
    labels[0, [1, 5, 9]] = ids[0, [1, 5, 9]]
    labels[1, 3] = 17
    with torch.no_grad():
        full = model(ids, mask, labels=labels)
        sparse = model(ids, mask, labels=labels, masked_only=True, layout="unpadded")
    assert sparse.logits.shape == (4, V)
    flat = full.logits.reshape(-1, V)[sparse.positions]
    _close(sparse.logits, flat, "masked logits")
    expected = F.cross_entropy(flat, labels.reshape(-1)[sparse.positions])
    _close(sparse.loss, expected, "loss")
    _close(full.loss, expected, "full loss")
    with pytest.raises(ValueError, match="pass labels"):
        model(ids, mask, masked_only=True)


def test_mlm_decoder_is_tied_to_the_word_embeddings():
    model = _mlm()
    ids, mask = _batch([6])
    labels = ids.clone()
    model.train()
    model(ids, mask, labels=labels).loss.backward()
    word = model.encoder.embeddings.word.weight
    assert model.head.decoder is None and word.grad is not None
    # Rows of tokens absent from the input still get gradient: through the tied decoder only.
    absent = min(set(range(2, V)) - set(ids.flatten().tolist()))
    assert word.grad[absent].abs().sum() > 0


def test_mlm_without_labelled_positions_has_zero_loss():
    model = _mlm()
    ids, mask = _batch([6])
    out = model(ids, mask, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0.0


def test_sequence_classifier_losses():
    torch.manual_seed(0)
    ids, mask = _batch([8, 5, 3])
    reg = SequenceClassifier(CONFIGS["bert"], num_labels=1).eval()
    target = torch.tensor([0.5, -1.0, 2.0])
    out = reg(ids, mask, labels=target)
    assert out.logits.shape == (3, 1)
    _close(out.loss, F.mse_loss(out.logits.squeeze(-1), target), "regression")

    clf = SequenceClassifier(CONFIGS["bert"], num_labels=3).eval()
    labels = torch.tensor([2, -100, 0])
    out = clf(ids, mask, labels=labels)
    _close(out.loss, F.cross_entropy(out.logits[[0, 2]], labels[[0, 2]]), "single label")

    multi = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 1]])
    out = clf(ids, mask, labels=multi)
    _close(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi), "multi label")
    with pytest.raises(ValueError, match="num_labels must be a positive int"):
        SequenceClassifier(CONFIGS["bert"], num_labels=0)


def test_token_classifier_ignores_minus_100():
    torch.manual_seed(0)
    model = TokenClassifier(CONFIGS["bert"], num_labels=4).eval()
    ids, mask = _batch([7, 4])
    labels = torch.randint(0, 4, ids.shape).masked_fill(~mask, -100)
    out = model(ids, mask, labels=labels)
    assert out.logits.shape == (2, 7, 4)
    _close(out.loss, F.cross_entropy(out.logits[mask], labels[mask]), "token loss")
    with pytest.raises(ValueError, match="labels have shape"):
        model(ids, mask, labels=labels[:, :3])


def test_question_answering_loss_ignores_out_of_range_spans():
    torch.manual_seed(0)
    model = QuestionAnswering(CONFIGS["bert"]).eval()
    ids, mask = _batch([9, 9])
    out = model(ids, mask, start_positions=torch.tensor([2, 50]),
                end_positions=torch.tensor([4, 60]))
    assert out.start_logits.shape == (2, 9)
    expected = (F.cross_entropy(out.start_logits[:1], torch.tensor([2]))
                + F.cross_entropy(out.end_logits[:1], torch.tensor([4]))) / 2
    _close(out.loss, expected, "qa loss")


def test_replaced_token_detection_loss_over_real_labelled_tokens():
    torch.manual_seed(0)
    model = ReplacedTokenDetector(CONFIGS["bert"]).eval()
    ids, mask = _batch([6, 3])
    labels = torch.randint(0, 2, ids.shape)
    labels[0, 0] = -100
    out = model(ids, mask, labels=labels)
    keep = mask & (labels != -100)
    _close(out.loss, F.binary_cross_entropy_with_logits(out.logits[keep],
                                                        labels[keep].float()), "rtd loss")


def test_pooling_respects_the_mask():
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]).bool()
    _close(pool(hidden, mask, "mean")[0], hidden[0, :3].mean(0), "mean")
    _close(pool(hidden, mask, "max")[1], hidden[1, 2:].amax(0), "max")
    _close(pool(hidden, mask, "cls")[1], hidden[1, 2], "cls = first real token")
    for mode in ("mean", "max", "cls"):
        assert torch.equal(pool(hidden, mask, mode)[2], torch.zeros(4)), mode
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool(hidden, mask, "sum")


def test_embedder_normalises():
    torch.manual_seed(0)
    model = Embedder(CONFIGS["bert"]).eval()
    ids, mask = _batch([7, 3])
    emb = model(ids, mask).embeddings
    _close(emb.norm(dim=-1), torch.ones(2), "unit norm")
