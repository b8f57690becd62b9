"""unmask.info: parameter formulas against real models (unmask's and transformers'), measured
memory against tensors of known size."""

from __future__ import annotations

import pytest
import torch

from unmask.checkpoints import FAMILIES, config_from_hf
from unmask.heads import MaskedLM
from unmask.info import (
    TABLE,
    count_from_config,
    describe,
    measure_peak,
    parts_of,
    table,
    tensor_bytes,
)
from unmask.model import Encoder

transformers = pytest.importorskip("transformers")

HF_CLASSES = {"bert": ("BertConfig", "BertModel", "BertForMaskedLM"),
              "roberta": ("RobertaConfig", "RobertaModel", "RobertaForMaskedLM"),
              "distilbert": ("DistilBertConfig", "DistilBertModel", "DistilBertForMaskedLM"),
              "deberta-v2": ("DebertaV2Config", "DebertaV2Model", "DebertaV2ForMaskedLM"),
              "xlm-roberta-xl": ("XLMRobertaXLConfig", "XLMRobertaXLModel",
                                 "XLMRobertaXLForMaskedLM"),
              "albert": ("AlbertConfig", "AlbertModel", "AlbertForMaskedLM"),
              "electra": ("ElectraConfig", "ElectraModel", None)}
SMALL = {  # families the table lacks, with embedding_size != hidden_size
    "albert": {"model_type": "albert", "vocab_size": 300, "embedding_size": 16,
               "hidden_size": 32, "num_hidden_layers": 4, "num_hidden_groups": 1,
               "num_attention_heads": 4, "intermediate_size": 48},
    "electra": {"model_type": "electra", "vocab_size": 300, "embedding_size": 16,
                "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 48},
}
CONFIGS = [(r["name"], r["config"]) for r in TABLE] + list(SMALL.items())


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights once


def _hf(h: dict, which: int):
    names = HF_CLASSES[h["model_type"]]
    kwargs = {k: v for k, v in h.items() if k != "model_type"}
    cfg = getattr(transformers, names[0])(**kwargs)
    with torch.device("meta"):  # no memory: shapes only
        return getattr(transformers, names[which])(cfg)


@pytest.mark.parametrize("name,h", CONFIGS, ids=[n for n, _ in CONFIGS])
def test_formula_matches_transformers(name, h):
    parts = count_from_config(h)
    assert _numel(_hf(h, 1)) == parts["embeddings"] + parts["encoder"] + parts["pooler"]
    if HF_CLASSES[h["model_type"]][2] is not None:  # *ForMaskedLM: no pooler, the MLM head
        assert _numel(_hf(h, 2)) == parts["embeddings"] + parts["encoder"] + parts["mlm head"]


@pytest.mark.parametrize("name,h", CONFIGS, ids=[n for n, _ in CONFIGS])
def test_formula_matches_unmask_models(name, h):
    if h["model_type"] not in FAMILIES:
        pytest.skip(f"{h['model_type']} is not an unmask family")
    cfg = config_from_hf(h)
    parts = count_from_config(h)
    with torch.device("meta"):
        encoder, mlm = Encoder(cfg), MaskedLM(cfg)
    assert _numel(encoder) == parts["embeddings"] + parts["encoder"]
    assert _numel(mlm) - _numel(encoder) == parts["mlm head"]
    assert sum(parts_of(mlm).values()) == _numel(mlm)


def test_table_notes_say_what_the_quotes_mean():
    rows = {r["name"]: r for r in table()}
    bert = rows["BERT-base"]
    assert bert["params"] == 109_482_240  # = transformers' BertModel (test above)
    assert "counted 109.5M" in bert["notes"][0] and "108.9M without the pooler" in bert["notes"][0]
    assert "'440 MB'" in bert["notes"][1] and "418 MiB" in bert["notes"][1]
    assert bert["memory_mib"]["fp32"] == pytest.approx(bert["params"] * 4 / 2**20)
    assert rows["BERT-base"]["train_mib"] == pytest.approx(4 * bert["memory_mib"]["fp32"])
    assert any("not an unmask family" in n for n in rows["XLM-R-XL"]["notes"])


def test_measure_peak_sees_a_known_allocation():
    def fn():
        a = torch.ones(1_000_000)  # 4 MB live while b is made
        b = torch.ones(500_000)
        del a, b

    peak = measure_peak(fn)
    assert 6_000_000 <= peak < 6_200_000


def test_describe_a_tiny_model(tmp_path):
    from unmask.checkpoints import save
    from unmask.config import preset

    torch.manual_seed(0)
    model = MaskedLM(preset("tiny", vocab_size=200))
    save(model, tmp_path, format="hf")
    d = describe(tmp_path, batch=2, length=16, train=True)
    n = _numel(model)
    assert d["parameters"]["total"] == n
    assert set(d["parameters"]) == {"embeddings", "encoder", "head: masked_lm", "total"}
    measured = d["weights_bytes"]["measured"]
    assert measured["fp32"] == tensor_bytes(model) >= 4 * n
    assert measured["bf16"] == measured["fp16"] == pytest.approx(measured["fp32"] / 2, rel=0.01)
    assert measured["int8"] < measured["fp32"]  # linear weights 1 byte, the rest fp32
    a = d["activations_bytes"]
    assert a["gradients"] == 4 * n
    assert a["forward_backward"] >= a["gradients"] > 0 and a["forward"] > 0
    bigger = describe(tmp_path, batch=8, length=16)["activations_bytes"]["forward"]
    assert bigger > 2 * a["forward"]  # activations grow with the batch
    config_only = describe(tmp_path / "config.json")
    assert config_only["parameters"]["encoder"] == d["parameters"]["encoder"]
    assert config_only["weights_bytes"]["measured"] is None
