"""unmask.dropout: the right rate and scale, reproducible by torch's seed, gradients masked."""

import pytest
import torch

from unmask.dropout import Dropout, dropout, keep_scale


def test_rate_scale_and_mean_are_dropouts():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = dropout(x, 0.1)
    zero = float((y == 0).float().mean())
    assert abs(zero - 0.1) < 0.002
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    assert abs(float(y.mean()) - 1.0) < 0.005


def test_reproducible_by_torch_seed_and_fresh_each_call():
    torch.manual_seed(3)
    a, b = keep_scale((64, 64), 0.5), keep_scale((64, 64), 0.5)
    torch.manual_seed(3)
    assert torch.equal(keep_scale((64, 64), 0.5), a)
    assert not torch.equal(a, b)


def test_gradient_flows_through_kept_elements_only():
    torch.manual_seed(0)
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.3)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.tensor(1 / 0.7))
    assert torch.all(x.grad[~kept] == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_scale_is_written_in_each_dtype(dtype):
    torch.manual_seed(1)
    s = keep_scale((300, 300), 0.1, dtype)
    assert s.dtype == dtype
    values = set(s.unique().tolist())
    assert values == {0.0, float(torch.tensor(1 / 0.9, dtype=dtype))}
    assert abs(float((s == 0).float().mean()) - 0.1) < 0.005


def test_module_is_identity_in_eval_and_keeps_dtype():
    m = Dropout(0.5)
    x = torch.randn(8, 8, dtype=torch.bfloat16)
    assert m.eval()(x) is x
    assert m.train()(x).dtype == torch.bfloat16
    assert isinstance(m, torch.nn.Dropout)  # code that sets .p on nn.Dropout still finds it


def test_bad_probability_is_named():
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        dropout(torch.ones(3), 1.0)
