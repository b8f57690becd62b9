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


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"logits must be \(N, V\)"):
        sum_cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long))
