"""Batches for inference and training: every row exactly once, one cutting rule, one padding."""

import random

import torch

from unmask.batching import IGNORE_INDEX, TaskBatches, collate, group, padded_batches


def _lengths(n: int) -> list[int]:
    rng = random.Random(0)
    return [rng.randint(2, 60) for _ in range(n)]


def spread(lengths, order) -> float:
    """Mean (longest - shortest) length within a batch."""
    widths = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in order]
    return sum(widths) / len(widths)


def test_grouped_and_random_batches_cover_every_row_once():
    lengths = _lengths(1000)
    grouped = group(lengths, 32, 10_000, shuffle=True, seed=1)
    plain = group(lengths, 32, 10_000, shuffle=True, seed=1, pool_batches=1)
    for order in (grouped, plain):
        assert sorted(i for b in order for i in b) == list(range(1000))
        assert max(len(b) for b in order) == 32
    # grouped batches hold similar lengths (little padding); random ones span the range
    assert spread(lengths, grouped) < 5
    assert spread(lengths, plain) > 40


def test_the_token_budget_bounds_every_batch_and_never_drops_a_long_row():
    lengths = [*_lengths(300), 500]  # one row longer than the budget
    for size in (None, 16):
        order = group(lengths, size, 400)
        assert sorted(i for b in order for i in b) == list(range(301))
        for b in order:
            assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 400
        assert [300] in order  # the long row alone, not dropped


def test_inference_batches_pad_on_the_right_and_give_each_row_back_its_index():
    rows = [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]]
    types = [[0, 0, 1], [0], [0, 1], [0, 0, 1, 1]]
    seen = {}
    for batch in padded_batches(rows, batch_tokens=6, pad_id=0, types=types):
        b, width = batch.input_ids.shape
        assert b * width <= 6 or b == 1
        for k, i in enumerate(batch.index):
            n = len(rows[i])
            assert batch.input_ids[k, :n].tolist() == rows[i]
            assert batch.input_ids[k, n:].eq(0).all()
            assert batch.attention_mask[k].tolist() == [True] * n + [False] * (width - n)
            assert batch.token_type_ids[k, :n].tolist() == types[i]
            assert batch.lengths[k] == n
            seen[int(i)] = True
    assert sorted(seen) == [0, 1, 2, 3]


def test_collate_pads_labels_with_the_ignored_index():
    features = [{"input_ids": [1, 2, 3], "labels": [4, 5, 6], "score": 0.5, "_offsets": "x"},
                {"input_ids": [1, 2], "labels": [7, 8], "score": 1.0, "_offsets": "y"}]
    out = collate(features, pad_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3], [1, 2, 0]]
    assert out["attention_mask"].tolist() == [[True] * 3, [True, True, False]]
    assert out["labels"].tolist() == [[4, 5, 6], [7, 8, IGNORE_INDEX]]
    assert out["score"].dtype == torch.float32
    assert "_offsets" not in out


def test_task_batches_resume_exactly_and_split_one_global_batch_between_ranks():
    features = [{"input_ids": [1] * n} for n in _lengths(200)]
    whole = TaskBatches(features, batch_size=8, batch_tokens=4096, seed=3)
    it = iter(whole)
    first = [next(it) for _ in range(40)]  # more than one epoch (25 batches)
    interrupted = TaskBatches(features, batch_size=8, batch_tokens=4096, seed=3)
    it = iter(interrupted)
    for _ in range(27):
        next(it)
    resumed = TaskBatches(features, batch_size=8, batch_tokens=4096, seed=3)
    resumed.load_state_dict(interrupted.state_dict())
    it = iter(resumed)
    assert [next(it) for _ in range(13)] == first[27:]
    ranks = [iter(TaskBatches(features, 4, 2048, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    for batch in first[:10]:
        assert [f for r in ranks for f in next(r)] == batch
