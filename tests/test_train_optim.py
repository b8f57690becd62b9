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
