"""sum_cross_entropy equals F.cross_entropy(sum) + argmax accuracy, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from unmask.train.cross_entropy import sum_cross_entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [0, 1, 37])
def test_matches_torch_cross_entropy_and_argmax(dtype, rows):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(rows, 1000, generator=g) * 4).to(dtype)
    targets = torch.randint(0, 1000, (rows,), generator=g)
    targets[: rows // 2] = logits[: rows // 2].float().argmax(-1)  # some hits
    mine = logits.clone().requires_grad_()
    ref = logits.clone().requires_grad_()
    loss, hits = sum_cross_entropy(mine, targets)
    expected = F.cross_entropy(ref.float(), targets, reduction="sum")
    (loss * 0.25).backward()
    (expected * 0.25).backward()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)
    assert int(hits) == int((logits.argmax(-1) == targets).sum())
    torch.testing.assert_close(mine.grad.float(), ref.grad.float(),
                               atol=1e-6 if dtype == torch.float32 else 4e-3, rtol=0)


def test_no_gradient_work_without_grad():
    logits, targets = torch.randn(5, 50), torch.randint(0, 50, (5,))
    with torch.no_grad():
        loss, hits = sum_cross_entropy(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets, reduction="sum"))
    assert int(hits) == int((logits.argmax(-1) == targets).sum())


def test_ties_count_as_argmax_does_first_largest_only():
    logits = torch.zeros(3, 40, dtype=torch.bfloat16)
    logits[:, 5] = logits[:, 9] = 2.0  # two largest in every row
    targets = torch.tensor([5, 9, 0])  # first of the tie, second of the tie, not largest
    _, hits = sum_cross_entropy(logits, targets)
    assert int(hits) == int((logits.argmax(-1) == targets).sum()) == 1


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"logits must be \(N, V\)"):
        sum_cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_cross_entropy_matches_linear_then_cross_entropy(autocast, with_bias):
    from unmask.train.cross_entropy import linear_cross_entropy

    g = torch.Generator().manual_seed(1)
    hidden, weight = torch.randn(29, 16, generator=g), torch.randn(300, 16, generator=g)
    bias = torch.randn(300, generator=g) if with_bias else None
    targets = torch.randint(0, 300, (29,), generator=g)
    results = []
    for fused in (True, False):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight)]
        b = bias.clone().requires_grad_() if with_bias else None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if fused:
                loss, hits = linear_cross_entropy(leaves[0], leaves[1], b, targets)
            else:
                logits = F.linear(leaves[0], leaves[1], b)
                loss = F.cross_entropy(logits.float(), targets, reduction="sum")
                hits = (logits.float().argmax(-1) == targets).sum()
        (loss / 7).backward()
        grads = [t.grad for t in leaves] + ([b.grad] if with_bias else [])
        results.append((loss.detach(), hits, *grads))
    tol = {"atol": 0.1, "rtol": 0.02} if autocast else {"atol": 1e-4, "rtol": 1e-5}
    for mine, ref in zip(*results, strict=True):
        assert mine.dtype == ref.dtype
        torch.testing.assert_close(mine.float(), ref.float(), **tol)


def test_linear_cross_entropy_twice_in_flight_keeps_both_gradients():
    """Two forwards before their backwards (two decoders at once) must not share a buffer."""
    from unmask.train.cross_entropy import linear_cross_entropy

    g = torch.Generator().manual_seed(2)
    weight = torch.randn(50, 8, generator=g, requires_grad=True)
    h1, h2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    t1, t2 = torch.randint(0, 50, (6,), generator=g), torch.randint(0, 50, (6,), generator=g)
    (linear_cross_entropy(h1, weight, None, t1)[0]
     + linear_cross_entropy(h2, weight, None, t2)[0]).backward()
    w = weight.detach().clone().requires_grad_()
    (F.cross_entropy(h1 @ w.T, t1, reduction="sum")
     + F.cross_entropy(h2 @ w.T, t2, reduction="sum")).backward()
    torch.testing.assert_close(weight.grad, w.grad, atol=1e-5, rtol=1e-5)


def test_linear_cross_entropy_refuses_a_second_backward():
    from unmask.train.cross_entropy import linear_cross_entropy

    weight = torch.randn(20, 4, requires_grad=True)
    loss, _ = linear_cross_entropy(torch.randn(3, 4), weight, None, torch.tensor([1, 2, 3]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward per forward"):
        loss.backward()


def test_a_target_far_below_the_top_keeps_its_exact_loss():
    """The target's probability underflows float32 (exp(-200)); the loss must still be 200."""
    logits = torch.zeros(2, 30)
    logits[:, 3] = 100.0
    logits[:, 7] = -100.0
    targets = torch.tensor([7, 3])
    loss, hits = sum_cross_entropy(logits.clone().requires_grad_(), targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets, reduction="sum"))
    assert 199.9 < float(loss.detach()) < 200.1 and int(hits) == 1
