"""Training batches: every row exactly once; grouped by length, or random when asked."""

import random

from unmask.tasks.batching import batches


def _features(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"input_ids": [1] * rng.randint(2, 60)} for _ in range(n)]


def spread(features, order) -> float:
    """Mean (longest - shortest) length within a batch."""
    widths = [max(len(features[i]["input_ids"]) for i in b)
              - min(len(features[i]["input_ids"]) for i in b) for b in order]
    return sum(widths) / len(widths)


def test_grouped_and_random_batches_cover_every_row_once():
    features = _features(1000)
    grouped = batches(features, 32, 10_000, shuffle=True, seed=1)
    plain = batches(features, 32, 10_000, shuffle=True, seed=1, pool_batches=1)
    for order in (grouped, plain):
        assert sorted(i for b in order for i in b) == list(range(1000))
        assert max(len(b) for b in order) == 32
    # grouped batches hold similar lengths (little padding); random ones span the range
    assert spread(features, grouped) < 5
    assert spread(features, plain) > 40
