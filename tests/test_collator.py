"""unmask.collator: the textbook batch exactly, padding rules, modes, reproducibility across
batch order and DataLoader workers, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from unmask.collator import MLMCollator
from unmask.corruption import MLMCorruption

PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
# "i love pizza ." and "nlp is fun" in bert-base-uncased ids, as the textbook writes them.
I_LOVE_PIZZA = [CLS, 1045, 2293, 10733, 1012, SEP]
NLP_IS_FUN = [CLS, 17953, 2003, 4569, SEP]


def _collator(**kw) -> MLMCollator:
    corruption = MLMCorruption(MASK, 30522, SPECIALS, seed=kw.pop("seed", 0))
    return MLMCollator(corruption, pad_token_id=PAD, **kw)


def test_textbook_example_exactly():
    batch = _collator(max_length=7)(
        [{"input_ids": I_LOVE_PIZZA}, {"input_ids": NLP_IS_FUN}], positions=[[3], [3]]
    )
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [
        [101, 1045, 2293, 103, 1012, 102, 0],
        [101, 17953, 2003, 103, 102, 0, 0],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [
        [-100, -100, -100, 10733, -100, -100, -100],
        [-100, -100, -100, 4569, -100, -100, -100],
    ]
    assert all(t.dtype == torch.int64 for t in batch.values())


@pytest.mark.parametrize("kw,width", [({}, 6), ({"pad_to_multiple_of": 8}, 8),
                                      ({"max_length": 9}, 9),
                                      ({"max_length": 6, "pad_to_multiple_of": 4}, 8)])
def test_padded_width(kw, width):
    batch = _collator(**kw)([I_LOVE_PIZZA, NLP_IS_FUN])  # plain id lists are examples too
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    assert batch["attention_mask"].sum(1).tolist() == [6, 5]
    pad = batch["attention_mask"] == 0
    assert (batch["input_ids"][pad] == PAD).all() and (batch["labels"][pad] == -100).all()


def test_input_forms_agree_and_extra_fields_are_padded():
    as_lists = [{"input_ids": I_LOVE_PIZZA, "token_type_ids": [0] * 6},
                {"input_ids": NLP_IS_FUN, "token_type_ids": [0, 0, 0, 1, 1]}]
    as_tensors = [{k: torch.tensor(v) for k, v in e.items()} for e in as_lists]
    as_arrays = [{k: np.asarray(v) for k, v in e.items()} for e in as_lists]
    c = _collator()
    ref = c(as_lists)
    for other in (as_tensors, as_arrays):
        out = c(other)
        assert all(torch.equal(ref[k], out[k]) for k in ref)
    assert ref["token_type_ids"].tolist() == [[0] * 6, [0, 0, 0, 1, 1, 0]]


def test_given_attention_mask_and_special_tokens_mask_are_respected():
    ids = [CLS] + list(range(1000, 1200)) + [SEP]
    att = [1] * 150 + [0] * 52  # the example's own padding-like tail
    protect = [0] * 202
    protect[1:51] = [1] * 50  # never pick these
    batch = _collator()([{"input_ids": ids, "attention_mask": att, "special_tokens_mask": protect}])
    assert batch["attention_mask"][0].tolist() == att
    picked = (batch["labels"][0] != -100).nonzero().flatten()
    assert picked.numel() > 0
    assert ((picked >= 51) & (picked < 150)).all()


class _Rows(Dataset):
    """Variable-length rows of ordinary ids, with word ids, each knowing its sample id."""

    def __init__(self, n: int = 48):
        rng = np.random.default_rng(1)
        self.rows = []
        for i in range(n):
            body = rng.integers(1000, 30000, size=int(rng.integers(5, 60))).tolist()
            words = np.repeat(np.arange(len(body)), 2)[: len(body)].tolist()
            self.rows.append({"input_ids": [CLS, *body, SEP], "word_ids": [None, *words, None],
                              "sample_id": i})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _by_sample(batches) -> dict[int, tuple[list[int], list[int]]]:
    """sample id -> (its corrupted ids, its labels), unpadded."""
    out = {}
    for sample_ids, batch in batches:
        for row, sid in enumerate(sample_ids):
            n = int(batch["attention_mask"][row].sum())
            out[sid] = (batch["input_ids"][row, :n].tolist(), batch["labels"][row, :n].tolist())
    return out


@pytest.mark.parametrize("mode", ["token", "whole_word", "span"])
def test_same_sample_same_corruption_whatever_batching(mode):
    data = _Rows()
    c = _collator(mode=mode, seed=7)
    one = _by_sample([(range(len(data)), c([data[i] for i in range(len(data))]))])
    order = np.random.default_rng(0).permutation(len(data)).tolist()
    batches = [order[s:s + 5] for s in range(0, len(order), 5)]
    other = _by_sample([(b, c([data[i] for i in b])) for b in batches])
    assert one == other
    assert sum(sum(x != -100 for x in lab) for _, lab in one.values()) > 0
    # a different seed draws differently
    assert _by_sample([(range(len(data)), _collator(mode=mode, seed=8)(data.rows))]) != one


def test_dataloader_workers_do_not_change_the_corruption():
    data = _Rows(24)
    c = _collator(mode="whole_word", seed=3)

    def run(workers: int, shuffle: bool):
        gen = torch.Generator().manual_seed(5)
        loader = DataLoader(data, batch_size=4, shuffle=shuffle, generator=gen,
                            num_workers=workers, collate_fn=lambda ex: ([e["sample_id"] for e in ex],
                                                                        c(ex)))
        return _by_sample(list(loader))

    assert run(0, False) == run(2, True)


def test_whole_word_mode_takes_every_piece_of_a_word():
    data = _Rows()
    batch = _collator(mode="whole_word", seed=2)(data.rows)
    for row in range(len(data)):
        words = data.rows[row]["word_ids"]
        chosen = {words[t] for t in (batch["labels"][row] != -100).nonzero().flatten().tolist()}
        for t, w in enumerate(words):
            assert (batch["labels"][row, t] != -100).item() == (w is not None and w in chosen)


def test_errors_name_the_fix():
    corruption = MLMCorruption(MASK, 30522, SPECIALS)
    with pytest.raises(ValueError, match="not in corruption.special_ids"):
        MLMCollator(corruption, pad_token_id=5)
    with pytest.raises(ValueError, match="mode must be one of"):
        MLMCollator(corruption, mode="words")
    with pytest.raises(TypeError, match="MLMCorruption"):
        MLMCollator("bert")
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        MLMCollator(corruption, max_length=0)
    c = MLMCollator(corruption)
    with pytest.raises(ValueError, match="empty"):
        c([])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        c([[CLS, 40000, SEP]])
    with pytest.raises(TypeError, match="integers"):
        c([[CLS, 1.5, SEP]])
    with pytest.raises(ValueError, match="1-D"):
        c([torch.ones(2, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match="more than max_length=4"):
        MLMCollator(corruption, max_length=4)([I_LOVE_PIZZA])
    with pytest.raises(ValueError, match="example 1 has no 'token_type_ids'"):
        c([{"input_ids": I_LOVE_PIZZA, "token_type_ids": [0] * 6}, {"input_ids": NLP_IS_FUN}])
    with pytest.raises(ValueError, match="example 0 has 2 word_ids but 6 input_ids"):
        MLMCollator(corruption, mode="whole_word")([{"input_ids": I_LOVE_PIZZA,
                                                     "word_ids": [0, 1]}])
    with pytest.raises(ValueError, match="needs 'word_ids'"):
        MLMCollator(corruption, mode="span")([I_LOVE_PIZZA])


def test_without_sample_ids_batches_differ_and_texts_keep_their_draw():
    data = _Rows(64)
    rows = [{k: v for k, v in r.items() if k != "sample_id"} for r in data.rows]
    c = _collator(seed=4)
    batches = [c(rows[s:s + 8]) for s in range(0, 64, 8)]
    # row 0 of each batch: different texts, so different positions (not the same slot draw)
    firsts = {tuple((b["labels"][0] != -100).nonzero().flatten().tolist()) for b in batches}
    assert len(firsts) == len(batches)
    # a text keeps its corruption in another batch, at another slot, with other padding
    again = c([rows[13], rows[5], rows[40]])
    for slot, i in enumerate([13, 5, 40]):
        b = batches[i // 8]
        n = len(rows[i]["input_ids"])
        assert torch.equal(again["labels"][slot, :n], b["labels"][i % 8, :n])
        assert torch.equal(again["input_ids"][slot, :n], b["input_ids"][i % 8, :n])
