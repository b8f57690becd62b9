"""The encoder: kernels and layouts agree, padding and masks behave, training works.
(Parity with transformers lives in test_checkpoints.py / test_minilm.py; heads in
test_heads.py, configs in test_config.py.)"""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from unmask import masks
from unmask.attention import BACKENDS as KERNELS
from unmask.attention import attention
from unmask.config import EncoderConfig
from unmask.heads import Embedder, MaskedLM
from unmask.model import LAYOUTS, Encoder, LengthGroups, init_weights

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


def _kernels():
    try:
        masks.require_flex()
    except RuntimeError:
        return [k for k in KERNELS if k != "flex"]
    return list(KERNELS)


# "kernel/layout" runs: every kernel on the padded layout, and the unpadded layout on the
# fused kernel and the written-out one (ALL_RUNS: every pair, for the agreement tests).
ALL_RUNS = [f"{k}/{lay}" for k in _kernels() for lay in LAYOUTS]
BACKENDS = [f"{k}/padded" for k in _kernels()] + ["sdpa/unpadded", "eager/unpadded"]


def _opts(run: str) -> dict:
    backend, layout = run.split("/")
    return {"backend": backend, "layout": layout}


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


# --- structure ------------------------------------------------------------------------------

def test_shared_layers_share_weights():
    shared, separate = Encoder(CONFIGS["albert"]), Encoder(CONFIGS["albert"].replace(
        shared_layers=None))
    assert len(shared.layers) == 1 and len(separate.layers) == 3
    assert sum(p.numel() for p in shared.parameters()) < sum(
        p.numel() for p in separate.parameters())


# --- backends agree -------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_backends_agree(name):
    model = _model(name)
    pad = CONFIGS[name].pad_token_id
    ids, mask = _batch([17, 9, 1, 13], pad=pad)
    with torch.no_grad():
        ref = model(ids, mask, output_hidden_states=True, backend="eager")
        for backend in ALL_RUNS:
            out = model(ids, mask, output_hidden_states=True, **_opts(backend))
            for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
                _close(a[mask], b[mask], f"{name}/{backend} hidden_states[{i}]")
            _close(out.last_hidden_state[mask], ref.last_hidden_state[mask], f"{name}/{backend}")
    assert len(ref.hidden_states) == CONFIGS[name].num_layers + 1
    assert torch.equal(ref.hidden_states[-1], ref.last_hidden_state)


@pytest.mark.parametrize("backend", ALL_RUNS)
def test_backends_agree_under_an_explicit_mask(backend):
    model = _model("modernbert")
    ids, mask = _batch([16, 11, 5])
    causal = masks.causal(16)
    with torch.no_grad():
        ref = model(ids, mask, mask=causal, backend="eager").last_hidden_state
        out = model(ids, mask, mask=causal, **_opts(backend)).last_hidden_state
    _close(out[mask], ref[mask], backend)


def test_unpadded_without_padding_but_with_a_mask():
    model = _model("modernbert")
    ids, _ = _batch([9, 9])
    with torch.no_grad():
        a = model(ids, mask=masks.causal(9), layout="unpadded").last_hidden_state
        b = model(ids, mask=masks.causal(9), backend="eager").last_hidden_state
    _close(a, b, "unpadded, no attention_mask")


def test_unpadded_path_gives_zeros_at_padding():
    model = _model("bert")
    ids, mask = _batch([8, 3])
    with torch.no_grad():
        out = model(ids, mask, layout="unpadded").last_hidden_state
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))


def test_unpadded_attention_groups_rows_by_length_with_the_same_outputs():
    """Rows of very different lengths attend in length groups on the unpadded layout (less
    padding in each attention call); right, left padding and holes give the padded outputs."""
    lengths = [3, 40, 4, 17, 9, 40, 1, 25]
    ids, mask = _batch(lengths, seed=4)
    holes = mask.clone()
    holes[1, 5:9] = False  # a row with a hole in the middle
    for name in ("bert", "albert", "roberta"):
        model = _model(name)
        for m in (mask, mask.flip(1), holes):
            with torch.no_grad():
                grouped = model(ids, m, layout="unpadded").last_hidden_state
                padded = model(ids, m, layout="padded").last_hidden_state
            _close(grouped[m], padded[m], f"{name} grouped vs padded")
    keep = mask.reshape(-1).nonzero().squeeze(1)
    groups = LengthGroups(mask, keep)
    widths = [w for _, _, w, _ in groups.groups]
    assert len(widths) > 1 and groups.total < mask.numel()  # less padding than (B, L)
    assert len(set(groups.dest.tolist())) == int(mask.sum())  # each token its own buffer row
    same = LengthGroups(torch.ones(3, 5, dtype=torch.bool), torch.arange(15))
    assert [(r, w, m) for _, r, w, m in same.groups] == [(3, 5, None)]  # one length: no mask


# --- invariances ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bert", "modernbert", "roberta"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_do_not_depend_on_padding_or_batch_mates(name, backend):
    model = _model(name)
    pad = CONFIGS[name].pad_token_id
    sentence = torch.randint(2, V, (1, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        alone = model(sentence, **_opts(backend)).last_hidden_state[0]  # (9, H)
        for lengths, seed in (([9, 20, 4], 1), ([9, 2], 2), ([9, 9, 9], 3)):
            for left in (False, True):
                ids, mask = _batch(lengths, seed=seed, pad=pad, left=left)
                ids[0][mask[0]] = sentence[0]
                out = model(ids, mask, **_opts(backend)).last_hidden_state[0][mask[0]]
                _close(out, alone, f"lengths={lengths} left={left}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_causal_mask_hides_the_future(backend):
    model = _model("modernbert")
    ids, mask = _batch([14, 10])
    perturbed = ids.clone()
    perturbed[:, 6] = (ids[:, 6] + 7) % V
    causal = masks.causal(14)
    with torch.no_grad():
        a = model(ids, mask, mask=causal, **_opts(backend)).last_hidden_state
        b = model(perturbed, mask, mask=causal, **_opts(backend)).last_hidden_state
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
        a = model(ids, mask, mask=window, **_opts(backend)).last_hidden_state
        b = model(perturbed, mask, mask=window, **_opts(backend)).last_hidden_state
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
            out = model(ids, mask, mask=none, **_opts(backend)).last_hidden_state
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
    distil = Encoder(CONFIGS["bert"].replace(type_vocab_size=0)).eval()
    # no segment table: segments are ignored, as in transformers (DeBERTa-v3 tokenizers send 1s)
    torch.testing.assert_close(distil(ids, token_type_ids=torch.ones_like(ids)).last_hidden_state,
                               distil(ids).last_hidden_state, atol=0, rtol=0)
    with pytest.raises(TypeError, match="needs an EncoderConfig"):
        Encoder({"hidden_size": 32})


def _mlm(seed=0):
    torch.manual_seed(seed)
    return MaskedLM(CONFIGS["bert"]).eval()


# --- training -------------------------------------------------------------------------------

def test_gradients_agree_between_padded_and_unpadded():
    ids, mask = _batch([10, 6, 3])
    labels = ids.masked_fill(~mask, -100)
    grads = {}
    for layout in LAYOUTS:
        model = _mlm(seed=1)
        model(ids, mask, labels=labels, layout=layout).loss.backward()
        grads[layout] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, g in grads["padded"].items():
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
        loss = model(corrupted, mask, labels=labels, layout="unpadded").loss
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
        assert torch.isfinite(model(ids, mask, mask=causal, layout="unpadded").logits).all()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, model(ids, mask).logits)


@pytest.mark.parametrize("backend", ["sdpa/padded", "sdpa/unpadded"])
def test_bfloat16_stays_close_to_float32(backend):
    model = _model("modernbert")
    ids, mask = _batch([12, 5])
    with torch.no_grad():
        ref = model(ids, mask, **_opts(backend)).last_hidden_state[mask]
        out = model.to(torch.bfloat16)(ids, mask, **_opts(backend)).last_hidden_state[mask]
    assert out.dtype == torch.bfloat16
    cos = F.cosine_similarity(out.float(), ref, dim=-1)
    assert cos.min() > 0.99


def test_training_attention_on_cpu_matches_sdpa_values_and_gradients():
    """CPU training runs "sdpa" written out (faster there); "sparse" runs torch's SDPA on the
    gathered blocks: the same values and gradients."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8, generator=g) for _ in range(3))
    mask = torch.rand(3, 1, 7, 7, generator=g) > 0.4
    mask[0, 0, 2] = False  # a query with no allowed key outputs zeros
    grads = []
    for backend in ("sdpa", "sparse"):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = attention(*leaves, mask, backend)
        out.pow(2).sum().backward()
        grads.append((out.detach(), *(t.grad for t in leaves)))
    for mine, ref in zip(*grads, strict=True):
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)
    assert torch.all(grads[0][0][0, :, 2] == 0)


def test_layout_is_its_own_setting_and_the_old_spelling_still_works():
    model = _model("bert")
    ids, mask = _batch([8, 3])
    assert (model.backend, model.layout) == ("sdpa", "padded")
    with torch.no_grad():
        new = model(ids, mask, backend="eager", layout="unpadded").last_hidden_state
        model.backend = "unpadded"  # the older spelling: the unpadded layout on "sdpa"
        assert (model.backend, model.layout) == ("sdpa", "unpadded")
        old = model(ids, mask).last_hidden_state
    assert torch.equal(old[~mask], torch.zeros_like(old[~mask]))  # unpadded: zeros at padding
    _close(new[mask], old[mask], "eager/unpadded vs sdpa/unpadded")
    assert Encoder(CONFIGS["bert"], backend="unpadded").layout == "unpadded"
    assert Embedder(CONFIGS["bert"]).encoder.layout == "unpadded"
    with pytest.raises(ValueError, match="unknown layout 'packed'"):
        model(ids, mask, layout="packed")
