"""The encoder, its configs and heads: backends agree, padding and masks behave, losses are
right, training works. (Parity with transformers lives in test_checkpoints.py.)"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from unmask import masks
from unmask.config import EncoderConfig, preset
from unmask.heads import (
    Embedder,
    MaskedLM,
    QuestionAnswering,
    ReplacedTokenDetector,
    SequenceClassifier,
    TokenClassifier,
    pool,
)
from unmask.model import ENCODER_BACKENDS, Encoder, init_weights

V = 60
TOL = 1e-5

CONFIGS = {
    "bert": EncoderConfig(vocab_size=V, hidden_size=32, num_layers=2, num_heads=4,
                          intermediate_size=64, max_position_embeddings=64),
    "modernbert": EncoderConfig(vocab_size=V, hidden_size=32, num_layers=3, num_heads=4,
                                intermediate_size=48, max_position_embeddings=64,
                                type_vocab_size=0, position="rotary", rope_theta=160000.0,
                                local_rope_theta=10000.0, norm="pre", activation="geglu",
                                attention_bias=False, mlp_bias=False, norm_bias=False,
                                layer_norm_eps=1e-5, local_window=6, global_every=3),
    "albert": EncoderConfig(vocab_size=V, hidden_size=32, num_layers=3, num_heads=4,
                            intermediate_size=64, max_position_embeddings=64, embedding_size=16,
                            shared_layers=1, activation="gelu_new"),
    "roberta": EncoderConfig(vocab_size=V, hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                             position_offset=2, pad_token_id=1),
}


def _backends():
    out = list(ENCODER_BACKENDS)
    try:
        masks.require_flex()
    except RuntimeError:
        out.remove("flex")
    return out


BACKENDS = _backends()


def _model(name: str, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    model = Encoder(CONFIGS[name])
    model.apply(partial(init_weights, std=0.15))  # larger weights: sharper attention, sharper tests
    return model.eval()


def _batch(lengths, seed: int = 0, pad: int = 0, left: bool = False):
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    ids = torch.randint(2, V, (len(lengths), n), generator=g)
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    if left:
        mask = mask.flip(1)
    return ids.masked_fill(~mask, pad), mask


def _close(a, b, what=""):
    err = (a - b).abs().max().item()
    assert err <= TOL, f"{what} differs by {err:.2e}"


# --- config ---------------------------------------------------------------------------------

def test_presets_have_bert_sizes():
    sizes = {name: (preset(name).num_layers, preset(name).hidden_size) for name in
             ("tiny", "mini", "small", "base")}
    assert sizes == {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "base": (12, 768)}
    assert preset("mini", vocab_size=8000).vocab_size == 8000
    assert preset("base").head_dim == 64
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


@pytest.mark.parametrize("bad,match", [
    ({"hidden_size": 30, "num_heads": 4}, "not divisible by num_heads"),
    ({"activation": "swiglu"}, "activation must be one of"),
    ({"norm": "sandwich"}, "norm must be"),
    ({"position": "alibi"}, "position must be one of"),
    ({"num_layers": 0}, "num_layers must be a positive int"),
    ({"shared_layers": 20}, "exceeds num_layers"),
    ({"hidden_dropout": 1.5}, "hidden_dropout must lie in"),
])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(**bad)


def test_config_dict_round_trip_and_typos():
    cfg = CONFIGS["modernbert"]
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown EncoderConfig field.*num_hidden_layers"):
        EncoderConfig.from_dict({**cfg.to_dict(), "num_hidden_layers": 3})
    assert [cfg.is_local(i) for i in range(3)] == [False, True, True]
    assert [cfg.rope_theta_of(i) for i in range(3)] == [160000.0, 10000.0, 10000.0]
    albert = CONFIGS["albert"]
    assert albert.num_blocks == 1 and [albert.block_of(i) for i in range(3)] == [0, 0, 0]


def test_shared_layers_share_weights():
    shared, separate = Encoder(CONFIGS["albert"]), Encoder(CONFIGS["albert"].replace(
        shared_layers=None))
    assert len(shared.layers) == 1 and len(separate.layers) == 3
    assert shared.num_parameters() < separate.num_parameters()


# --- backends agree -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_backends_agree(name):
    model = _model(name)
    pad = CONFIGS[name].pad_token_id
    ids, mask = _batch([17, 9, 1, 13], pad=pad)
    with torch.no_grad():
        ref = model(ids, mask, output_hidden_states=True, backend="eager")
        for backend in BACKENDS:
            out = model(ids, mask, output_hidden_states=True, backend=backend)
            for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
                _close(a[mask], b[mask], f"{name}/{backend} hidden_states[{i}]")
            _close(out.last_hidden_state[mask], ref.last_hidden_state[mask], f"{name}/{backend}")
    assert len(ref.hidden_states) == CONFIGS[name].num_layers + 1
    assert torch.equal(ref.hidden_states[-1], ref.last_hidden_state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_under_an_explicit_mask(backend):
    model = _model("modernbert")
    ids, mask = _batch([16, 11, 5])
    causal = masks.causal(16)
    with torch.no_grad():
        ref = model(ids, mask, mask=causal, backend="eager").last_hidden_state
        out = model(ids, mask, mask=causal, backend=backend).last_hidden_state
    _close(out[mask], ref[mask], backend)


def test_unpadded_without_padding_but_with_a_mask():
    model = _model("modernbert")
    ids, _ = _batch([9, 9])
    with torch.no_grad():
        a = model(ids, mask=masks.causal(9), backend="unpadded").last_hidden_state
        b = model(ids, mask=masks.causal(9), backend="eager").last_hidden_state
    _close(a, b, "unpadded, no attention_mask")


def test_unpadded_path_gives_zeros_at_padding():
    model = _model("bert")
    ids, mask = _batch([8, 3])
    with torch.no_grad():
        out = model(ids, mask, backend="unpadded").last_hidden_state
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))


# --- invariances ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bert", "modernbert", "roberta"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_do_not_depend_on_padding_or_batch_mates(name, backend):
    model = _model(name)
    pad = CONFIGS[name].pad_token_id
    sentence = torch.randint(2, V, (1, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        alone = model(sentence, backend=backend).last_hidden_state[0]  # (9, H)
        for lengths, seed in (([9, 20, 4], 1), ([9, 2], 2), ([9, 9, 9], 3)):
            for left in (False, True):
                ids, mask = _batch(lengths, seed=seed, pad=pad, left=left)
                ids[0][mask[0]] = sentence[0]
                out = model(ids, mask, backend=backend).last_hidden_state[0][mask[0]]
                _close(out, alone, f"lengths={lengths} left={left}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_mask_hides_the_future(backend):
    model = _model("modernbert")
    ids, mask = _batch([14, 10])
    perturbed = ids.clone()
    perturbed[:, 6] = (ids[:, 6] + 7) % V
    causal = masks.causal(14)
    with torch.no_grad():
        a = model(ids, mask, mask=causal, backend=backend).last_hidden_state
        b = model(perturbed, mask, mask=causal, backend=backend).last_hidden_state
    _close(a[:, :6], b[:, :6], "positions before the change")
    assert (a[:, 6:][mask[:, 6:]] - b[:, 6:][mask[:, 6:]]).abs().max() > 1e-3  # the rest moves


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_mask_limits_the_receptive_field(backend):
    """Window |i - j| <= 2 in each of 2 layers: position 10 reaches only 6..14."""
    model = _model("bert")
    ids, mask = _batch([20, 18])
    perturbed = ids.clone()
    perturbed[:, 10] = (ids[:, 10] + 3) % V
    window = masks.window(20, 4)
    with torch.no_grad():
        a = model(ids, mask, mask=window, backend=backend).last_hidden_state
        b = model(perturbed, mask, mask=window, backend=backend).last_hidden_state
    far = torch.ones(20, dtype=torch.bool)
    far[6:15] = False
    _close(a[:, far][mask[:, far]], b[:, far][mask[:, far]], "outside the window")
    assert (a[:, 6:15] - b[:, 6:15]).abs().max() > 1e-3


def test_local_layers_use_the_configured_window():
    """ModernBERT-style local layers: a model whose every layer is local (global_every larger
    than the depth, so only layer 0 is global) differs from the all-global model, and equals a
    global model given the same window as an explicit mask on those layers' span."""
    cfg = CONFIGS["modernbert"]
    local = Encoder(cfg).eval()
    glob = Encoder(cfg.replace(local_window=None)).eval()
    glob.load_state_dict(local.state_dict())
    ids, _ = _batch([30])
    with torch.no_grad():
        assert (local(ids).last_hidden_state - glob(ids).last_hidden_state).abs().max() > 1e-4
        short = ids[:, :4]  # shorter than the window: local == global
        _close(local(short).last_hidden_state, glob(short).last_hidden_state, "short")


def test_fully_masked_rows_give_zeros_not_nan():
    model = _model("bert")
    ids, mask = _batch([6, 6])
    none = torch.zeros(6, 6, dtype=torch.bool)
    none[:, 0] = True
    none[3] = False  # query 3 may attend nothing
    for backend in BACKENDS:
        with torch.no_grad():
            out = model(ids, mask, mask=none, backend=backend).last_hidden_state
        assert torch.isfinite(out).all(), backend


# --- outputs --------------------------------------------------------------------------------

def test_attention_probabilities():
    model = _model("bert")
    ids, mask = _batch([7, 4])
    with torch.no_grad():
        out = model(ids, mask, output_attentions=True)
        plain = model(ids, mask)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 7, 7)
    probs = out.attentions[0]
    _close(probs.sum(-1), torch.ones(2, 4, 7), "row sums")
    assert torch.equal(probs[1, :, :, 4:], torch.zeros_like(probs[1, :, :, 4:]))  # pad keys
    _close(out.last_hidden_state[mask], plain.last_hidden_state[mask], "output")


def test_positions_follow_real_tokens_and_can_be_given():
    model = _model("bert")
    ids, _mask = _batch([5], seed=3)
    with torch.no_grad():
        base = model(ids).last_hidden_state
        shifted = model(ids, position_ids=torch.arange(2, 7)).last_hidden_state
    assert (base - shifted).abs().max() > 1e-3


# --- input errors ---------------------------------------------------------------------------

def test_clear_input_errors():
    model = _model("bert")
    ids, mask = _batch([5, 3])
    with pytest.raises(ValueError, match=r"input_ids\[None\]"):
        model(ids[0])
    with pytest.raises(TypeError, match="integer ids"):
        model(ids.float())
    with pytest.raises(ValueError, match="looks additive"):
        model(ids, (1.0 - mask.float()) * -1e9)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, mask[:, :3])
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown backend 'flash'"):
        model(ids, backend="flash")
    with pytest.raises(TypeError, match="mask must be boolean"):
        model(ids, mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match="mask must cover every"):
        model(ids, mask=torch.ones(1, 1, 1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="token_type_ids hold 2"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    distil = Encoder(CONFIGS["bert"].replace(type_vocab_size=0))
    distil(ids, token_type_ids=torch.zeros_like(ids))  # zeros are fine (tokenizers send them)
    with pytest.raises(ValueError, match="no segment embeddings"):
        distil(ids, token_type_ids=torch.ones_like(ids))
    with pytest.raises(TypeError, match="needs an EncoderConfig"):
        Encoder({"hidden_size": 32})


# --- heads and losses -----------------------------------------------------------------------

def _mlm(seed=0):
    torch.manual_seed(seed)
    return MaskedLM(CONFIGS["bert"]).eval()


def test_mlm_masked_only_matches_full_logits_and_loss():
    model = _mlm()
    ids, mask = _batch([12, 7])
    labels = torch.full_like(ids, -100)
    labels[0, [1, 5, 9]] = ids[0, [1, 5, 9]]
    labels[1, 3] = 17
    with torch.no_grad():
        full = model(ids, mask, labels=labels)
        sparse = model(ids, mask, labels=labels, masked_only=True, backend="unpadded")
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


# --- training -------------------------------------------------------------------------------

def test_gradients_agree_between_padded_and_unpadded():
    ids, mask = _batch([10, 6, 3])
    labels = ids.masked_fill(~mask, -100)
    grads = {}
    for backend in ("sdpa", "unpadded"):
        model = _mlm(seed=1)
        model(ids, mask, labels=labels, backend=backend).loss.backward()
        grads[backend] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, g in grads["sdpa"].items():
        _close(grads["unpadded"][name], g, name)


def test_training_reduces_the_mlm_loss():
    model = _mlm(seed=2).train()
    ids, mask = _batch([16, 12, 9, 14], seed=4)
    labels = ids.masked_fill(~mask, -100)
    corrupted = ids.clone()
    corrupted[:, 3::4] = 1  # a [MASK]-like id the model must learn to see through
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(corrupted, mask, labels=labels, backend="unpadded").loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::8]


def test_dropout_only_in_training():
    model = _mlm()
    ids, mask = _batch([8, 4])
    model.train()
    with torch.no_grad():
        a, b = model(ids, mask).logits, model(ids, mask).logits
    assert (a - b).abs().max() > 1e-4
    causal = masks.causal(8)
    with torch.no_grad():  # attention dropout with a mask: still finite
        assert torch.isfinite(model(ids, mask, mask=causal, backend="unpadded").logits).all()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, model(ids, mask).logits)


@pytest.mark.parametrize("backend", ["sdpa", "unpadded"])
def test_bfloat16_stays_close_to_float32(backend):
    model = _model("modernbert")
    ids, mask = _batch([12, 5])
    with torch.no_grad():
        ref = model(ids, mask, backend=backend).last_hidden_state[mask]
        out = model.to(torch.bfloat16)(ids, mask, backend=backend).last_hidden_state[mask]
    assert out.dtype == torch.bfloat16
    cos = F.cosine_similarity(out.float(), ref, dim=-1)
    assert cos.min() > 0.99


def test_training_attention_on_cpu_matches_sdpa_values_and_gradients():
    """CPU training runs written-out attention (faster there); same function as SDPA."""
    from unmask.attention import attention
    from unmask.model import _attention_for_training

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, generator=g) for _ in range(3))
    mask = torch.rand(3, 1, 7, 7, generator=g) > 0.4
    mask[0, 0, 2] = False  # a query with no allowed key outputs zeros
    grads = []
    for fn in (lambda *t: _attention_for_training(*t, mask, 0.0),
               lambda *t: attention(*t, mask, "sdpa")):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.pow(2).sum().backward()
        grads.append((out.detach(), *(t.grad for t in leaves)))
    for mine, ref in zip(*grads, strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)
    assert torch.all(grads[0][0][0, :, 2] == 0)
