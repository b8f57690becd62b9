"""Packed rows re-laid as one row per document: the same tokens, positions from 0, and the same
hidden states as encoding each document alone (no attention across documents)."""

from __future__ import annotations

import torch

from unmask.config import preset
from unmask.model import Encoder
from unmask.train.layout import segment_index, to_segments


def packed(docs: list[list[int]], width: int, pad: int = 0):
    """Docs packed greedily into rows of `width`: input_ids, labels (= ids), attention_mask,
    position_ids restarting at each document, as PackedBatches gives them."""
    rows, row = [], []
    for doc in docs:
        if len(row) + len(doc) > width:
            rows.append(row)
            row = []
        row = row + doc
    rows.append(row)
    ids = torch.full((len(rows), width), pad)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    r = c = 0
    for doc in docs:
        if c + len(doc) > width:
            r, c = r + 1, 0
        ids[r, c:c + len(doc)] = torch.tensor(doc)
        positions[r, c:c + len(doc)] = torch.arange(len(doc))
        mask[r, c:c + len(doc)] = True
        c += len(doc)
    return ids, mask, positions


def documents() -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [[101, *torch.randint(1000, 2000, (n - 2,), generator=g).tolist(), 102]
            for n in (5, 3, 7, 4, 9, 2)]


def test_segments_hold_each_document_sorted_by_length():
    docs = documents()
    ids, mask, positions = packed(docs, width=12)
    out = to_segments({"input_ids": ids, "labels": ids}, mask, positions,
                      {"input_ids": 0, "labels": -100})
    lengths = out["attention_mask"].sum(1).tolist()
    assert lengths == sorted(len(d) for d in docs)
    got = sorted(out["input_ids"][i, :n].tolist() for i, n in enumerate(lengths))
    assert got == sorted(docs)
    assert (out["labels"][~out["attention_mask"]] == -100).all()
    assert (out["position_ids"][out["attention_mask"]] ==
            torch.cat([torch.arange(n) for n in lengths])).all()
    flat, seg, pos, sorted_lengths = segment_index(mask, positions)
    assert len(flat) == sum(len(d) for d in docs) and sorted_lengths.tolist() == lengths
    assert (out["input_ids"][seg, pos] == ids.reshape(-1)[flat]).all()  # each token's new home


def test_encoding_the_segments_equals_encoding_each_document_alone():
    torch.manual_seed(0)
    encoder = Encoder(preset("tiny", vocab_size=30522)).eval()
    docs = documents()
    ids, mask, positions = packed(docs, width=12)
    seg = to_segments({"input_ids": ids}, mask, positions, {"input_ids": 0})
    with torch.no_grad():
        hidden = encoder(seg["input_ids"], seg["attention_mask"],
                         position_ids=seg["position_ids"]).last_hidden_state
        for i, n in enumerate(seg["attention_mask"].sum(1).tolist()):
            alone = encoder(seg["input_ids"][i:i + 1, :n]).last_hidden_state[0]
            torch.testing.assert_close(hidden[i, :n], alone, atol=1e-5, rtol=1e-5)
