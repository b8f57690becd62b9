"""DeBERTa-v2 / v3 against transformers on the configs of the published models.

Each model is random-initialised by transformers from the config of microsoft/deberta-v3-xsmall,
-base (whose widths -small shares: they differ only in depth) or deberta-v2-xlarge (real widths,
buckets and position settings; two layers and a 512-token vocabulary, for test speed), saved in
the Hugging Face layout, loaded by unmask.
"""

import pytest
import torch

from unmask.checkpoints import load, save

transformers = pytest.importorskip("transformers")

V3 = {"relative_attention": True, "position_buckets": 256, "norm_rel_ebd": "layer_norm",
          "share_att_key": True, "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7,
          "max_relative_positions": -1, "position_biased_input": False, "type_vocab_size": 0,
          "max_position_embeddings": 512, "hidden_act": "gelu"}
CONFIGS = {
    "deberta-v3-xsmall": dict(V3, hidden_size=384, num_attention_heads=6, intermediate_size=1536),
    "deberta-v3-base": dict(V3, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "deberta-v2-xlarge": dict(V3, hidden_size=1536, num_attention_heads=24,
                              intermediate_size=6144, conv_kernel_size=3, conv_act="gelu"),
    # not published, but what the settings allow: separate table projections, plain distances,
    # absolute positions as well, c2p alone
    "separate-keys": dict(V3, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                          share_att_key=False, position_buckets=-1, max_relative_positions=16,
                          position_biased_input=True, pos_att_type="c2p", norm_rel_ebd="none",
                          type_vocab_size=2),
}
HF_CLASSES = {
    "encoder": "DebertaV2Model",
    "masked_lm": "DebertaV2ForMaskedLM",
    "sequence_classification": "DebertaV2ForSequenceClassification",
    "token_classification": "DebertaV2ForTokenClassification",
    "question_answering": "DebertaV2ForQuestionAnswering",
}


def _hf_model(name: str, task: str, **extra):
    cfg = transformers.DebertaV2Config(**CONFIGS[name], num_hidden_layers=2, vocab_size=512,
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                       **extra)
    torch.manual_seed(0)
    model = getattr(transformers, HF_CLASSES[task])(cfg).eval()
    with torch.no_grad():  # transformers zero-initialises biases and LayerNorms: perturb them
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _batch(n: int = 3, length: int = 40):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 512, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1, 25:] = 0  # right padding, as a tokenizer gives
    mask[2, 7:] = 0
    return ids, mask


def _outputs(out):
    return getattr(out, "logits", None) if not hasattr(out, "start_logits") else \
        torch.stack([out.start_logits, out.end_logits])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_encoder_matches_transformers(name, tmp_path):
    ref = _hf_model(name, "encoder")
    ref.save_pretrained(tmp_path)
    ours = load(tmp_path).eval()
    ids, mask = _batch()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        for backend, layout in (("eager", "padded"), ("sdpa", "padded"), ("sdpa", "unpadded")):
            got = ours(ids, attention_mask=mask, backend=backend, layout=layout).last_hidden_state
            real = mask.bool()
            torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0,
                                       msg=f"{name} {backend} {layout}")


@pytest.mark.parametrize("task", ["masked_lm", "sequence_classification",
                                  "token_classification", "question_answering"])
@pytest.mark.parametrize("name", ["deberta-v3-xsmall"])  # heads do not see the conv layer
def test_heads_match_transformers_and_save_back(name, task, tmp_path):
    extra = {"masked_lm": {"legacy": False}, "question_answering": {}}.get(task, {"num_labels": 3})
    ref = _hf_model(name, task, **extra)
    ref.save_pretrained(tmp_path / "hf")
    ours = load(tmp_path / "hf").eval()
    assert not ours.load_report.missing
    ids, mask = _batch()
    real = mask.bool()
    with torch.no_grad():
        want = _outputs(ref(input_ids=ids, attention_mask=mask))
        got = ours(ids, attention_mask=mask)
        got = got.logits if hasattr(got, "logits") else torch.stack([got.start_logits,
                                                                      got.end_logits])
        if task in ("masked_lm", "token_classification"):
            torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)
        elif task == "question_answering":
            torch.testing.assert_close(got[:, real], want[:, real], atol=1e-5, rtol=0)
        else:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    save(ours, tmp_path / "back", format="hf")
    again = getattr(transformers, HF_CLASSES[task]).from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(_outputs(again(input_ids=ids, attention_mask=mask)), want,
                                   atol=1e-6, rtol=0)


def test_legacy_masked_lm_head_loads_as_the_current_one(tmp_path):
    ref = _hf_model("deberta-v3-xsmall", "masked_lm", legacy=True)
    ref.save_pretrained(tmp_path)
    ours = load(tmp_path).eval()
    assert not ours.load_report.missing
    ids, mask = _batch()
    with torch.no_grad():
        want, got = ref(input_ids=ids, attention_mask=mask).logits, ours(ids, mask).logits
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], atol=1e-5, rtol=0)


def _tiny(**changes):
    from unmask.config import EncoderConfig
    from unmask.model import Encoder

    cfg = EncoderConfig(vocab_size=512, hidden_size=64, num_layers=2, num_heads=4,
                        intermediate_size=128, type_vocab_size=0, position="none",
                        relative_attention=("c2p", "p2c"), position_buckets=16,
                        max_relative_positions=64, relative_norm=True, share_att_key=True,
                        layer_norm_eps=1e-7, hidden_dropout=0.0, attention_dropout=0.0,
                        **changes)
    torch.manual_seed(0)
    return Encoder(cfg).eval()


@pytest.mark.parametrize("conv", [0, 3])
def test_packed_documents_encode_as_if_alone(conv):
    from unmask import masks

    enc = _tiny(conv_kernel_size=conv)
    a, b = torch.randint(5, 512, (1, 9)), torch.randint(5, 512, (1, 6))
    with torch.no_grad():
        alone = [enc(x).last_hidden_state[0] for x in (a, b)]
        packed = torch.cat([a, b], dim=1)
        positions = torch.cat([torch.arange(9), torch.arange(6)])[None]
        out = enc(packed, position_ids=positions,
                  mask=masks.document_from_lengths([9, 6])).last_hidden_state[0]
    torch.testing.assert_close(out, torch.cat(alone), atol=1e-5, rtol=0)


def test_window_mask_and_fully_masked_rows():
    from unmask import masks

    enc = _tiny()
    ids = torch.randint(5, 512, (2, 12))
    allowed = masks.window(12, 4).allowed.clone()
    allowed[..., 3, :] = False  # query 3 may attend to nothing
    with torch.no_grad():
        eager = enc(ids, mask=allowed, backend="eager").last_hidden_state
        sdpa = enc(ids, mask=allowed, backend="sdpa").last_hidden_state
    assert torch.isfinite(eager).all()
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_stays_finite(dtype):
    """transformers' DeBERTa overflowed to NaN in fp16: finfo.min masks plus large scores."""
    enc = _tiny()
    ids = torch.randint(5, 512, (2, 40))
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 10:] = False
    with torch.no_grad():
        want = enc(ids, mask).last_hidden_state
        got = enc.to(dtype)(ids, mask).last_hidden_state.float()
    assert torch.isfinite(got).all()
    cos = torch.nn.functional.cosine_similarity(got[mask], want[mask], dim=-1)
    assert cos.min() > 0.99


V1_BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
           "relative_attention": True, "pos_att_type": "c2p|p2c", "max_relative_positions": -1,
           "position_biased_input": False, "type_vocab_size": 0, "layer_norm_eps": 1e-7}


@pytest.mark.parametrize("task", ["encoder", "sequence_classification"])
def test_deberta_v1_matches_transformers_and_saves_back(task, tmp_path):
    """microsoft/deberta-base's config: one fused, head-interleaved in_proj with q / v biases."""
    names = {"encoder": "DebertaModel", "masked_lm": "DebertaForMaskedLM",
             "sequence_classification": "DebertaForSequenceClassification"}
    cfg = transformers.DebertaConfig(**V1_BASE, num_hidden_layers=2, vocab_size=512,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     legacy=False)
    torch.manual_seed(0)
    ref = getattr(transformers, names[task])(cfg).eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n.endswith(("bias", "q_bias", "v_bias")) or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    ref.save_pretrained(tmp_path / "hf")
    ours = load(tmp_path / "hf").eval()
    ids, mask = _batch()
    real = mask.bool()
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask)
        want = out.last_hidden_state if task == "encoder" else out.logits
        got = ours(ids, attention_mask=mask)
        got = got.last_hidden_state if task == "encoder" else got.logits
    if task == "sequence_classification":
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)
    save(ours, tmp_path / "back", format="hf")
    again = getattr(transformers, names[task]).from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        out = again(input_ids=ids, attention_mask=mask)
        back = out.last_hidden_state if task == "encoder" else out.logits
    torch.testing.assert_close(back, want, atol=1e-6, rtol=0)
