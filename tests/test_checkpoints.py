"""Hugging Face checkpoints: parity with transformers for every family, round trips, errors.

Tiny random models are built by transformers itself, with every weight (LayerNorms included)
randomised so that a swapped or missing key cannot hide behind an identity initialisation,
then saved with save_pretrained and loaded by unmask.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from unmask.checkpoints import (
    FAMILIES,
    check_tokenizer,
    config_from_hf,
    load,
    read_weights,
    resolve,
    save,
)
from unmask.config import preset
from unmask.heads import (
    Embedder,
    MaskedLM,
    QuestionAnswering,
    ReplacedTokenDetector,
    SequenceClassifier,
    TokenClassifier,
)
from unmask.model import ENCODER_BACKENDS, Encoder

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

V, H, HEADS, INTER = 99, 32, 4, 37
TOL = 1e-5
try:
    from torch.nn.attention import flex_attention  # noqa: F401
    BACKENDS = ENCODER_BACKENDS  # eager, sdpa, sparse, flex (uncompiled on CPU), unpadded
except ImportError:  # torch < 2.5
    BACKENDS = tuple(b for b in ENCODER_BACKENDS if b != "flex")


def _hf_config(family: str):
    t = transformers
    common = {"vocab_size": V, "hidden_size": H, "num_attention_heads": HEADS, "intermediate_size": INTER,
                  "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    if family == "bert":
        return t.BertConfig(num_hidden_layers=2, max_position_embeddings=64, **common)
    if family == "roberta":
        return t.RobertaConfig(num_hidden_layers=2, max_position_embeddings=66, pad_token_id=1,
                               type_vocab_size=1, **common)
    if family == "xlm-roberta":
        return t.XLMRobertaConfig(num_hidden_layers=2, max_position_embeddings=66,
                                  pad_token_id=1, type_vocab_size=1, **common)
    if family == "distilbert":
        return t.DistilBertConfig(vocab_size=V, dim=H, n_layers=2, n_heads=HEADS, hidden_dim=INTER,
                                  max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)
    if family == "electra":
        return t.ElectraConfig(num_hidden_layers=2, embedding_size=16, max_position_embeddings=64,
                               **common)
    if family == "albert":  # 4 layers sharing 2 groups: layer i runs group i // 2
        return t.AlbertConfig(num_hidden_layers=4, num_hidden_groups=2, embedding_size=16,
                              max_position_embeddings=64, hidden_act="gelu_new", **common)
    if family == "modernbert":  # local window 8 (|i-j| <= 4), global every 2nd layer
        return t.ModernBertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=4,
                                  num_attention_heads=HEADS, intermediate_size=INTER,
                                  max_position_embeddings=128, pad_token_id=0, bos_token_id=2,
                                  eos_token_id=3, cls_token_id=2, sep_token_id=3,
                                  local_attention=8, global_attn_every_n_layers=2,
                                  global_rope_theta=160000.0, local_rope_theta=10000.0)
    raise AssertionError(family)


ARCHS = {
    "bert": ["BertModel", "BertForMaskedLM", "BertForPreTraining",
             "BertForSequenceClassification", "BertForTokenClassification",
             "BertForQuestionAnswering"],
    "roberta": ["RobertaModel", "RobertaForMaskedLM", "RobertaForSequenceClassification",
                "RobertaForTokenClassification", "RobertaForQuestionAnswering"],
    "xlm-roberta": ["XLMRobertaModel", "XLMRobertaForMaskedLM",
                    "XLMRobertaForSequenceClassification"],
    "distilbert": ["DistilBertModel", "DistilBertForMaskedLM",
                   "DistilBertForSequenceClassification", "DistilBertForTokenClassification",
                   "DistilBertForQuestionAnswering"],
    "electra": ["ElectraModel", "ElectraForMaskedLM", "ElectraForPreTraining",
                "ElectraForSequenceClassification", "ElectraForTokenClassification",
                "ElectraForQuestionAnswering"],
    "albert": ["AlbertModel", "AlbertForMaskedLM", "AlbertForPreTraining",
               "AlbertForSequenceClassification", "AlbertForTokenClassification",
               "AlbertForQuestionAnswering"],
    "modernbert": ["ModernBertModel", "ModernBertForMaskedLM",
                   "ModernBertForSequenceClassification", "ModernBertForTokenClassification",
                   "ModernBertForQuestionAnswering"],
}
CASES = [(fam, arch) for fam, archs in ARCHS.items() for arch in archs]
EXPECTED_CLASS = {"Model": Encoder, "ForMaskedLM": MaskedLM, "ForSequenceClassification":
                  SequenceClassifier, "ForTokenClassification": TokenClassifier,
                  "ForQuestionAnswering": QuestionAnswering}


def _randomise(model, seed: int) -> None:
    """Every parameter random: LayerNorm weights near 1, everything else ~ N(0, 0.15)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """(family, arch) -> directory of a saved tiny random transformers model (built once)."""
    cache: dict[tuple[str, str], Path] = {}

    def get(family: str, arch: str, num_labels: int = 3) -> Path:
        if (family, arch) not in cache:
            cfg = _hf_config(family)
            if "Classification" in arch:
                cfg.num_labels = num_labels
            torch.manual_seed(0)
            model = getattr(transformers, arch)(cfg).eval()
            _randomise(model, seed=len(cache))
            d = tmp_path_factory.mktemp(arch)
            model.save_pretrained(d)
            cache[family, arch] = d
        return cache[family, arch]

    return get


def _inputs(family: str, seed: int = 0):
    """A right-padded batch of lengths 20, 13, 7, 2 (specials-free random ids)."""
    g = torch.Generator().manual_seed(seed)
    lengths = [20, 13, 7, 2]
    pad = 1 if "roberta" in family else 0
    ids = torch.randint(4, V, (len(lengths), max(lengths)), generator=g)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    ids = ids.masked_fill(~mask, pad)
    kwargs = {"input_ids": ids, "attention_mask": mask.long()}
    if family in ("bert", "electra", "albert"):
        kwargs["token_type_ids"] = (torch.arange(max(lengths))[None] >= 5).long().expand_as(ids)
    return kwargs


def _hf_outputs(model, kwargs):
    with torch.no_grad():
        return model(**kwargs, output_hidden_states=True)


def _compare(ours, theirs, mask: torch.Tensor) -> None:
    """Compare every output the two share, at real (non-pad) token positions."""
    real = mask.bool()

    def close(a, b, what):
        assert a.shape == b.shape, f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}"
        if a.dim() >= 2 and a.shape[:2] == real.shape:
            a, b = a[real], b[real]
        err = (a - b).abs().max().item()
        assert err <= TOL, f"{what} differs by {err:.2e}"

    if ours.hidden_states is not None and theirs.hidden_states is not None:
        assert len(ours.hidden_states) == len(theirs.hidden_states)
        for i, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states)):
            close(a, b, f"hidden_states[{i}]")
    if hasattr(ours, "last_hidden_state") and hasattr(theirs, "last_hidden_state"):
        close(ours.last_hidden_state, theirs.last_hidden_state, "last_hidden_state")
    if hasattr(ours, "start_logits"):
        close(ours.start_logits, theirs.start_logits, "start_logits")
        close(ours.end_logits, theirs.end_logits, "end_logits")
    elif hasattr(ours, "logits"):
        ref = theirs.logits if hasattr(theirs, "logits") else theirs.prediction_logits
        close(ours.logits, ref, "logits")


@pytest.mark.parametrize("family,arch", CASES, ids=[a for _, a in CASES])
def test_parity_with_transformers(hf_dir, family, arch):
    d = hf_dir(family, arch)
    theirs = getattr(transformers, arch).from_pretrained(d).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete checkpoint loads without any warning
        ours = load(d)
    suffix = arch[len(FAMILIES[family].arch):]
    expected = (ReplacedTokenDetector if arch == "ElectraForPreTraining"
                else MaskedLM if suffix == "ForPreTraining" else EXPECTED_CLASS[suffix])
    assert type(ours) is expected
    assert not ours.load_report.missing
    kwargs = _inputs(family)
    ref = _hf_outputs(theirs, kwargs)
    for backend in BACKENDS:
        with torch.no_grad():
            out = ours(**kwargs, output_hidden_states=True, backend=backend)
        _compare(out, ref, kwargs["attention_mask"])


@pytest.mark.parametrize("family,arch", CASES, ids=[a for _, a in CASES])
def test_hf_round_trip(hf_dir, family, arch, tmp_path):
    """unmask loads a transformers checkpoint, saves it back, transformers loads that: same
    outputs, no missing weights (except BertModel-style poolers our bare encoder lacks)."""
    ours = load(hf_dir(family, arch))
    save(ours, tmp_path, format="hf")
    cfg = json.loads((tmp_path / "config.json").read_text())
    if arch in ("BertForPreTraining", "AlbertForPreTraining"):
        arch = arch.replace("PreTraining", "MaskedLM")  # we keep the MLM, not NSP / SOP
    assert cfg["model_type"] == family and cfg["architectures"] == [arch]
    theirs, info = getattr(transformers, arch).from_pretrained(tmp_path, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if "pooler" not in k]
    assert not missing and not info["unexpected_keys"] and not info["mismatched_keys"]
    kwargs = _inputs(family, seed=1)
    ref = _hf_outputs(theirs.eval(), kwargs)
    with torch.no_grad():
        out = ours(**kwargs, output_hidden_states=True)
    _compare(out, ref, kwargs["attention_mask"])
    again = load(tmp_path)  # and unmask reads its own HF output back, identically
    with torch.no_grad():
        again_out = again(**kwargs)
    _compare(again_out, out, kwargs["attention_mask"])


@pytest.mark.parametrize("family", ["bert", "modernbert", "albert"])
def test_unmask_round_trip_is_exact(hf_dir, family, tmp_path):
    model = load(hf_dir(family, ARCHS[family][1]))  # the MLM
    save(model, tmp_path)
    assert (tmp_path / "unmask.json").is_file()
    again = load(tmp_path, task="masked_lm")
    assert again.hf_model_type == family
    kwargs = _inputs(family)
    with torch.no_grad():
        assert torch.equal(model(**kwargs).logits, again(**kwargs).logits)


def test_unmask_format_holds_models_hf_cannot(tmp_path):
    """A rotary, GeGLU, post-LN model with token types is no HF family: format='hf' refuses
    it with a clear error, the unmask format stores it exactly."""
    cfg = preset("tiny", vocab_size=V, position="rotary", activation="geglu", num_layers=2,
                 local_window=8, global_every=2)
    model = SequenceClassifier(cfg, num_labels=4, id2label={i: f"c{i}" for i in range(4)}).eval()
    with pytest.raises(ValueError, match="format='unmask'"):
        save(model, tmp_path / "hf", format="hf")
    save(model, tmp_path / "ours")
    again = load(tmp_path / "ours")
    assert isinstance(again, SequenceClassifier) and again.id2label == model.id2label
    ids = torch.randint(0, V, (2, 30))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)


def test_embedder_round_trip_keeps_pooling(tmp_path):
    model = Embedder(preset("tiny", vocab_size=V), pooling="max", normalize=False,
                     max_length=64).eval()
    save(model, tmp_path)
    again = load(tmp_path)
    assert (again.pooling, again.normalize, again.max_length) == ("max", False, 64)
    ids = torch.randint(0, V, (3, 10))
    with torch.no_grad():
        assert torch.equal(model(ids).embeddings, again(ids).embeddings)


def test_load_with_another_task_initialises_the_head(hf_dir):
    d = hf_dir("bert", "BertForMaskedLM")
    with pytest.warns(UserWarning, match="newly initialised.*head.out.weight"):
        clf = load(d, task="sequence_classification", num_labels=5)
    assert clf.num_labels == 5 and "head.out.weight" in clf.load_report.missing
    mlm = load(d)
    # The encoder is the checkpoint's either way.
    for name, p in clf.encoder.state_dict().items():
        assert torch.equal(p, mlm.encoder.state_dict()[name]), name
    enc = load(d, task="encoder")  # dropping a head is silent
    assert isinstance(enc, Encoder) and "cls.predictions.bias" in enc.load_report.unused


def test_num_labels_override_reinitialises_the_classifier(hf_dir):
    d = hf_dir("bert", "BertForSequenceClassification")
    with pytest.warns(UserWarning, match="newly initialised"):
        clf = load(d, task="sequence_classification", num_labels=7)
    assert clf.head.out.out_features == 7
    assert clf.load_report.missing == ["head.out.weight", "head.out.bias"]


def test_sharded_and_legacy_checkpoints(hf_dir, tmp_path):
    """Sharded safetensors, TF-era LayerNorm.gamma/beta names and explicit tied decoder
    weights all load to the same model."""
    src = hf_dir("bert", "BertForMaskedLM")
    hf = transformers.BertForMaskedLM.from_pretrained(src)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ref = load(src)
    kwargs = _inputs("bert")
    with torch.no_grad():
        expected = ref(**kwargs).logits
        assert torch.equal(load(tmp_path / "sharded")(**kwargs).logits, expected)

    from safetensors.torch import save_file
    state = read_weights(src)
    legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                       "LayerNorm.beta"): v
              for k, v in state.items()}
    legacy["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].clone()
    legacy["cls.predictions.decoder.bias"] = state["cls.predictions.bias"].clone()
    legacy["bert.embeddings.position_ids"] = torch.arange(64)[None]
    (tmp_path / "legacy").mkdir()
    save_file(legacy, str(tmp_path / "legacy" / "model.safetensors"))
    (tmp_path / "legacy" / "config.json").write_text((src / "config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = load(tmp_path / "legacy")
    with torch.no_grad():
        assert torch.equal(old(**kwargs).logits, expected)


# --- errors -------------------------------------------------------------------------------

def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(_hf_config("bert").to_dict()))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(tmp_path)


def test_a_file_instead_of_a_directory(hf_dir):
    with pytest.raises(ValueError, match="pass the directory"):
        load(hf_dir("bert", "BertModel") / "config.json")


def test_truncated_and_corrupt_safetensors(hf_dir, tmp_path):
    src = hf_dir("bert", "BertModel")
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    data = (src / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(tmp_path)


def test_weights_that_do_not_match_the_config(hf_dir, tmp_path):
    src = hf_dir("bert", "BertModel")
    cfg = json.loads((src / "config.json").read_text())
    cfg["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not match"):
        load(tmp_path)
    cfg["intermediate_size"], cfg["num_hidden_layers"] = INTER, 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="lacks encoder weights.*layers.2"):
        load(tmp_path)


def test_unsupported_architecture_lists_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="unsupported model_type 'gpt2'.*bert.*modernbert"):
        load(tmp_path)
    with pytest.raises(ValueError, match="unsupported model_type"):
        config_from_hf({"model_type": "t5"})


def test_unsupported_head_is_named(hf_dir, tmp_path):
    src = hf_dir("bert", "BertModel")
    cfg = json.loads((src / "config.json").read_text())
    cfg["architectures"] = ["BertForNextSentencePrediction"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="BertForNextSentencePrediction.*task='encoder'"):
        load(tmp_path)
    assert isinstance(load(tmp_path, task="encoder"), Encoder)


def test_pickle_only_with_opt_in(hf_dir, tmp_path):
    src = hf_dir("bert", "BertModel")
    (tmp_path / "config.json").write_text((src / "config.json").read_text())
    torch.save(read_weights(src), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="allow_pickle=True .command line: --allow-pickle"):
        load(tmp_path)
    model = load(tmp_path, allow_pickle=True)
    kwargs = _inputs("bert")
    with torch.no_grad():
        assert torch.equal(model(**kwargs).last_hidden_state,
                           load(src)(**kwargs).last_hidden_state)


def test_pickle_with_code_is_refused_even_with_opt_in(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "config.json").write_text(json.dumps(_hf_config("bert").to_dict()))
    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="holds more than tensors .print.*even with allow_pickle=True") as err:
        load(tmp_path, allow_pickle=True)
    assert "weights_only=False" not in str(err.value)  # torch's advice: never repeat it


def test_hub_name_offline_says_what_to_download(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="download config.json.*huggingface.co/someone/some-bert"):
        resolve("someone/some-bert")


def test_tokenizer_vocab_check():
    cfg = preset("tiny", vocab_size=100)

    class Tok:
        vocab_size = 120

    with pytest.raises(ValueError, match="120 tokens.*100"):
        check_tokenizer(Tok(), cfg)
    Tok.vocab_size = 90  # a padded embedding table is fine
    check_tokenizer(Tok(), Encoder(cfg))
    model = Encoder(cfg)
    with pytest.raises(ValueError, match="outside this model's vocabulary"):
        model(torch.tensor([[5, 100]]))


def test_head_that_does_not_fit_the_family_is_refused(tmp_path):
    cfg = preset("tiny", vocab_size=V)
    from unmask.heads import SequenceClassificationHead

    model = SequenceClassifier(cfg, head=SequenceClassificationHead(128, 2, pooling="mean"))
    with pytest.raises(ValueError, match="does not fit BertForSequenceClassification"):
        save(model, tmp_path, format="hf")


def test_directory_with_a_mismatched_tokenizer(hf_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    src = hf_dir("bert", "BertModel")
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    vocab = {f"w{i}": i for i in range(V + 20)}  # 119 tokens for a 99-row embedding table
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="tokenizer has 119 tokens.*vocabulary has 99"):
        load(tmp_path)


BUILT = {
    "bert": (preset("tiny", vocab_size=V, hidden_size=32, num_heads=4, intermediate_size=48),
             "BertForMaskedLM"),
    "albert": (preset("tiny", vocab_size=V, hidden_size=32, num_heads=4, intermediate_size=48,
                      num_layers=3, embedding_size=16, shared_layers=1), "AlbertForMaskedLM"),
    "modernbert": (preset("tiny", vocab_size=V, hidden_size=32, num_heads=4,
                          intermediate_size=48, num_layers=3, type_vocab_size=0,
                          position="rotary", rope_theta=160000.0, local_rope_theta=10000.0,
                          norm="pre", activation="geglu", attention_bias=False, mlp_bias=False,
                          norm_bias=False, layer_norm_eps=1e-5, local_window=8,
                          global_every=3, hidden_dropout=0.0, attention_dropout=0.0),
                   "ModernBertForMaskedLM"),
}


@pytest.mark.parametrize("family", BUILT)
def test_models_built_by_unmask_load_in_transformers(family, tmp_path):
    """The other direction: a model unmask builds from an EncoderConfig (not loaded from
    transformers) is saved in the Hugging Face layout and transformers reproduces it."""
    cfg, arch = BUILT[family]
    torch.manual_seed(0)
    model = MaskedLM(cfg).eval()
    for p in model.parameters():  # random LayerNorms too
        torch.nn.init.normal_(p, 0.0 if p.dim() > 1 else 0.5, 0.2)
    save(model, tmp_path, format="hf")
    theirs, info = getattr(transformers, arch).from_pretrained(tmp_path,
                                                               output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    kwargs = _inputs(family)
    ref = _hf_outputs(theirs.eval(), kwargs)
    with torch.no_grad():
        out = model(**kwargs, output_hidden_states=True)
    _compare(out, ref, kwargs["attention_mask"])


# --- old checkpoints: config.json without model_type ---------------------------------------

def _without_model_type(src: Path, dst: Path) -> Path:
    """A copy of checkpoint `src` whose config.json has neither model_type nor architectures,
    as many published checkpoints written before transformers recorded them."""
    cfg = json.loads((src / "config.json").read_text())
    cfg.pop("model_type"), cfg.pop("architectures", None), cfg.pop("transformers_version")
    dst.mkdir()
    (dst / "config.json").write_text(json.dumps(cfg))
    (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    return dst


@pytest.mark.parametrize("family,arch", [
    ("bert", "BertForMaskedLM"), ("bert", "BertModel"), ("roberta", "RobertaForMaskedLM"),
    ("electra", "ElectraModel"), ("albert", "AlbertModel"), ("distilbert", "DistilBertModel"),
    ("modernbert", "ModernBertModel")])
def test_family_inferred_from_weight_names(hf_dir, family, arch, tmp_path):
    """The family comes from the weight names (bert.*, roberta.*, albert's layer groups...),
    a warning says so, and the model is the one loaded with model_type."""
    src = hf_dir(family, arch)
    old = _without_model_type(src, tmp_path / "old")
    task = "masked_lm" if arch.endswith("MaskedLM") else "encoder"
    with pytest.warns(UserWarning, match=f"no model_type: loading it as '{family}', inferred"):
        model = load(old, task=task)
    assert model.hf_model_type == family
    kwargs = _inputs(family)
    with torch.no_grad():
        ours, ref = model(**kwargs), load(src, task=task)(**kwargs)
    key = "logits" if task == "masked_lm" else "last_hidden_state"
    assert torch.equal(getattr(ours, key), getattr(ref, key))


def test_family_inferred_from_architectures(hf_dir, tmp_path):
    src = hf_dir("electra", "ElectraForPreTraining")
    old = _without_model_type(src, tmp_path / "old")
    cfg = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**cfg, "architectures": ["ElectraForPreTraining"]}))
    with pytest.warns(UserWarning, match="'electra', inferred from its architecture"):
        assert isinstance(load(old), ReplacedTokenDetector)


def test_ambiguous_family_says_how_to_settle_it(hf_dir, tmp_path):
    """A base RoBERTa checkpoint (no prefix, one token type) could as well be a BERT: refuse,
    and name the fix."""
    old = _without_model_type(hf_dir("roberta", "RobertaModel"), tmp_path / "old")
    with pytest.raises(ValueError, match='fit bert and roberta alike: add "model_type"'):
        load(old)
    cfg = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(old).hf_model_type == "roberta"


def test_config_json_that_is_not_an_object(hf_dir, tmp_path):
    src = hf_dir("bert", "BertModel")
    (tmp_path / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config.json holds a JSON list, where an object"):
        load(tmp_path)
