"""Pictures: attention weights (and masks, which must keep working)."""

from __future__ import annotations

import pytest
import torch

from unmask import masks
from unmask.viz import save_attention_png, save_mask_png

PNG = b"\x89PNG\r\n\x1a\n"


def probs(layers=2, heads=3, n=5):
    return torch.rand(layers, heads, n, n).softmax(-1)


def test_attention_grid_single_panel_and_tuple_input(tmp_path):
    labels = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    p = probs()
    assert save_attention_png(p, tmp_path / "all.png", labels).read_bytes()[:8] == PNG
    one = save_attention_png(tuple(p[:, None][i] for i in range(2)), tmp_path / "one.png",
                             labels, layer=1, head=2)
    assert one.read_bytes()[:8] == PNG
    assert (tmp_path / "one.png").stat().st_size < (tmp_path / "all.png").stat().st_size


def test_attention_refuses_wrong_shapes(tmp_path):
    with pytest.raises(ValueError, match="layers, heads, L, L"):
        save_attention_png(torch.rand(2, 5, 5), tmp_path / "x.png")
    with pytest.raises(ValueError, match="head 3 is out of range"):
        save_attention_png(probs(), tmp_path / "x.png", head=3)
    with pytest.raises(ValueError, match="4 labels for 5 positions"):
        save_attention_png(probs(), tmp_path / "x.png", ["a"] * 4)


def test_mask_png_still_works(tmp_path):
    out = save_mask_png(masks.causal(4), tmp_path / "m.png", labels=list("abcd"))
    assert out.read_bytes()[:8] == PNG
