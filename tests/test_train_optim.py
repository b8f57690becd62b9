import itertools

import pytest

from unmask.config import preset
from unmask.heads import MaskedLM
from unmask.train.optim import lr_factor, parameter_groups


def test_no_weight_decay_on_biases_and_norms():
    model = MaskedLM(preset("tiny", vocab_size=100))
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    no_decay_names = [names[id(p)] for p in no_decay["params"]]
    assert any("norm" in n for n in no_decay_names) and any("bias" in n for n in no_decay_names)
    assert no_decay["weight_decay"] == 0.0
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == sum(p.numel() for p in model.parameters())  # tied weights counted once


@pytest.mark.parametrize("kind", ["linear", "cosine", "wsd", "constant"])
def test_schedules_warm_up_then_end_where_they_should(kind):
    factors = [lr_factor(s, kind, 10, 100) for s in range(101)]
    assert factors[0] == pytest.approx(1 / 11) and factors[10] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(factors[:11]))  # warm-up rises
    assert factors[100] == pytest.approx(1.0 if kind == "constant" else 0.0)
    if kind == "wsd":
        assert factors[79] == 1.0 and factors[90] == pytest.approx(0.5)


def test_linear_schedule_steps_and_unknown_kinds():
    assert [lr_factor(s, "linear", 0, 4) for s in range(4)] == pytest.approx(
        [1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(0, "triangle", 0, 10)


def _rates(model, lr=1e-3, decay=0.5):
    """parameter name -> its group's starting learning rate."""
    from unmask.train.optim import adamw

    optimizer = adamw(model, lr, layer_decay=decay)
    by_id = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    return {n: by_id[id(p)] for n, p in model.named_parameters() if id(p) in by_id}


def test_layer_decay_gives_each_depth_its_rate_exactly():
    from unmask.heads import SequenceClassifier
    from unmask.train.pretrain import arch_overrides

    model = SequenceClassifier(preset("mini", vocab_size=100), num_labels=2)  # 4 layers
    rates = _rates(model)
    expected = {"encoder.embeddings.": 1e-3 * 0.5 ** 5, "encoder.layers.0.": 1e-3 * 0.5 ** 4,
                "encoder.layers.1.": 1e-3 * 0.5 ** 3, "encoder.layers.2.": 1e-3 * 0.25,
                "encoder.layers.3.": 1e-3 * 0.5, "head.": 1e-3}
    for name, rate in rates.items():
        want = [v for k, v in expected.items() if name.startswith(k)]
        assert want and rate == want[0], name
    assert len(rates) == len(list(model.parameters()))  # every parameter in one group
    # ALBERT: one block shared by layers 1..4 gets layer 4's rate (its highest user);
    # DeBERTa's relative table (read by every layer) too.
    albert = _rates(MaskedLM(preset("mini", vocab_size=100, shared_layers=1)))
    assert {v for k, v in albert.items() if k.startswith("encoder.layers.0.")} == {5e-4}
    deberta = _rates(MaskedLM(preset("tiny", vocab_size=100, **arch_overrides("deberta-v3",
                                                                               32))))
    assert deberta["encoder.relative.table.weight"] == 5e-4
    assert deberta["encoder.embeddings.word.weight"] == 1e-3 * 0.5 ** 3
    # no decay keeps the two plain groups, and the no-decay rule holds per depth
    assert len(parameter_groups(model, 0.01, 1.0)) == 2
    for group in parameter_groups(model, 0.01, 0.8):
        assert all((p.dim() >= 2) == (group["weight_decay"] > 0) for p in group["params"])


def test_freezing_takes_the_embeddings_and_the_lowest_layers_only():
    from unmask.train.optim import freeze

    model = MaskedLM(preset("mini", vocab_size=100))
    frozen = freeze(model, embeddings=True, layers=2)
    off = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert off and all(n.startswith(("encoder.embeddings.", "encoder.layers.0.",
                                      "encoder.layers.1.")) for n in off)
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if n in off)
    assert model.encoder.layers[2].attn.qkv.weight.requires_grad
    assert all(p.requires_grad for p in model.head.parameters())
    groups = parameter_groups(model, 0.01, 0.8)  # frozen weights are in no group
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in
                                                         model.parameters())
    with pytest.raises(ValueError, match="--freeze-layers 5 exceeds the 4 layers"):
        freeze(MaskedLM(preset("mini", vocab_size=100)), layers=5)
    albert = MaskedLM(preset("mini", vocab_size=100, shared_layers=1))
    freeze(albert, layers=3)  # the shared block still serves layer 4: it trains
    assert all(p.requires_grad for p in albert.encoder.layers.parameters())
