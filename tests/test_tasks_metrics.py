"""Task metrics: hand-checked values, and the standard implementations as oracles where
installed (sklearn, scipy, seqeval)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from unmask.tasks.metrics import (
    accuracy,
    bio_entities,
    entity_prf,
    macro_f1,
    pearson,
    ranks,
    spearman,
    squad_em,
    squad_f1,
    squad_normalize,
    squad_scores,
)


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert accuracy(gold, pred) == pytest.approx(3 / 5)
    # F1: a = 2*1/(2+1+1) = 0.5, b = 2*2/(4+1+0) = 0.8, c = 0 -> mean 0.4333
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    with pytest.raises(ValueError, match="gold has 2 items but predictions 1"):
        accuracy([1, 2], [1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_macro_f1_matches_sklearn(pairs):
    metrics = pytest.importorskip("sklearn.metrics")
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    assert macro_f1(gold, pred) == pytest.approx(
        metrics.f1_score(gold, pred, average="macro", zero_division=0))


def test_ranks_average_ties():
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-3, 3)), min_size=3, max_size=60))
@example([(0, 0.0), (0, 1.8195054317633231e-273), (1, 0.0)])  # squares underflowed: was nan
def test_correlations_match_scipy(pairs):
    stats = pytest.importorskip("scipy.stats")
    x, y = [float(a) for a, _ in pairs], [b for _, b in pairs]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return  # constant input: undefined
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)


def test_bio_entities_by_hand():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG", "I-ORG", "O", "I-PER"]
    assert bio_entities(tags) == {("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4),
                                  ("ORG", 5, 6), ("PER", 8, 8)}
    # seqeval's rule: an I- tag after another type starts a new entity.
    assert bio_entities(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}
    # multi-word types (WNUT's creative-work) keep their hyphen.
    assert bio_entities(["B-creative-work", "I-creative-work"]) == {("creative-work", 0, 1)}


def test_entity_prf_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    # gold: PER(0-1), LOC(3), ORG(0); pred: PER(0), LOC(3), ORG(0), LOC(1): 2 exact matches
    s = entity_prf(gold, pred)
    assert (s["gold"], s["predicted"], s["correct"]) == (3, 4, 2)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_entity_prf_matches_seqeval_on_random_tags():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-creative-work",
            "I-creative-work"]
    for _ in range(50):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(8)]
        pred = [[rng.choice(tags) for _ in s] for s in gold]
        ours = entity_prf(gold, pred)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred))
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred))
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred))


def test_squad_normalisation_and_scores_as_the_official_script():
    assert squad_normalize("The  Denver Broncos!") == "denver broncos"
    assert squad_normalize("an apple, a pear") == "apple pear"
    assert squad_em("the Broncos.", "Broncos") == 1.0
    # "denver broncos" vs "broncos": precision 1/2, recall 1 -> 2/3
    assert squad_f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3)
    assert squad_f1("", "Broncos") == 0.0
    scores = squad_scores({"q1": "Denver Broncos", "q2": "1990"},
                          {"q1": ["Broncos", "Denver Broncos"], "q2": ["in 1989"],
                           "q3": ["missing"]})
    assert scores["exact_match"] == pytest.approx(100 / 3)  # q1 exact; q3 unanswered counts 0
    assert scores["f1"] == pytest.approx(100 / 3)
