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
    binary_f1,
    bio_entities,
    entity_prf,
    macro_f1,
    matthews_corrcoef,
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


# --- non-finite input: NaN in, NaN out (never a made-up score) --------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("metric, gold, pred", [
    (spearman, [NAN] * 5, [1, 2, 3, 4, 5]),  # was 1.0: NaN sorted anywhere, ranks 1..5
    (spearman, [1, 2, 3, 4, 5], [1, 2, NAN, 4, 5]),
    (pearson, [1, 2, 3], [1, NAN, 3]),
    (pearson, [1, 2, INF], [1, 2, 3]),
    (pearson, [1, 2, 3], [-INF, 2, 3]),
    (accuracy, [0.5, NAN], [0.5, NAN]),  # was 0.5: NaN != NaN counted as a miss
    (macro_f1, [1.0, NAN, 2.0], [1.0, 2.0, 2.0]),
    (matthews_corrcoef, [0, 1, NAN], [0, 1, 1]),
    (binary_f1, [0, 1, 1], [0, 1, NAN]),
    (accuracy, [], []),  # undefined: was 0.0
    (macro_f1, [], []),
    (matthews_corrcoef, [], []),
    (pearson, [], []),  # was ZeroDivisionError
    (pearson, [1.0], [2.0]),
])
def test_nan_or_empty_input_scores_nan(metric, gold, pred):
    assert math.isnan(metric(gold, pred))


def test_ranks_of_nan_are_nan_as_scipy():
    stats = pytest.importorskip("scipy.stats")
    assert all(math.isnan(r) for r in ranks([3.0, NAN, 1.0]))
    assert all(math.isnan(r) for r in stats.rankdata([3.0, NAN, 1.0]))


finite_or_not = st.one_of(st.floats(-1e300, 1e300), st.sampled_from([NAN, INF, -INF, 0.0]),
                          st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite_or_not, finite_or_not), min_size=0, max_size=30))
@example([(1e308, 1.0), (1e308, 2.0), (0.0, 3.0)])  # the sum overflowed: was nan
@example([(NAN, 1.0), (NAN, 2.0), (NAN, 3.0)])
def test_correlations_of_any_floats(pairs):
    """Pearson: NaN when an input is NaN or infinite; Spearman: NaN when one is NaN (an
    infinity has a rank, as in scipy); else scipy's values, always within [-1, 1]."""
    stats = pytest.importorskip("scipy.stats")
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    p, s = pearson(x, y), spearman(x, y)
    if any(math.isnan(v) for v in x + y) or len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        assert math.isnan(p) and math.isnan(s)  # NaN inside, too short, or constant
        return
    if not all(math.isfinite(v) for v in x + y):
        assert math.isnan(p)
        assert s == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
        return
    assert -1.0 - 1e-12 <= p <= 1.0 + 1e-12 and -1.0 - 1e-12 <= s <= 1.0 + 1e-12
    assert s == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
    # scipy's Pearson loses all precision where the values span 300 orders of magnitude
    # (its mean of 1e300 and 1e-300); compare where scipy itself is exact.
    if max(map(abs, x + y)) < 1e100 and min(abs(v) for v in x + y if v) > 1e-100:
        assert p == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-6)


labels = st.sampled_from([0, 1, 2, 0.5, NAN, INF])


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(labels, labels), min_size=1, max_size=30))
def test_classification_metrics_on_float_labels(pairs):
    """Float labels (a regression's scores fed to a classification metric): NaN anywhere ->
    NaN; otherwise sklearn's values on the same labels (spelt as strings for sklearn)."""
    metrics = pytest.importorskip("sklearn.metrics")
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    ours = {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred),
            "mcc": matthews_corrcoef(gold, pred), "f1": binary_f1(gold, pred, positive=1)}
    if any(math.isnan(v) for v in gold + pred):
        assert all(math.isnan(v) for v in ours.values()), ours
        return
    g, p = [str(v) for v in gold], [str(v) for v in pred]
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(g, p))
    assert ours["macro_f1"] == pytest.approx(
        metrics.f1_score(g, p, average="macro", zero_division=0))
    assert ours["mcc"] == pytest.approx(metrics.matthews_corrcoef(g, p), abs=1e-12)
    assert ours["f1"] == pytest.approx(metrics.f1_score(
        g, p, labels=["1"], average="macro", zero_division=0))  # F1 of the label 1 alone


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=50))
def test_matthews_and_binary_f1_match_sklearn(pairs):
    metrics = pytest.importorskip("sklearn.metrics")
    gold, pred = [str(g) for g, _ in pairs], [str(p) for _, p in pairs]
    assert matthews_corrcoef(gold, pred) == pytest.approx(
        metrics.matthews_corrcoef(gold, pred), abs=1e-12)
    binary = [g if g in "01" else "0" for g in gold], [p if p in "01" else "0" for p in pred]
    assert binary_f1(*binary, positive="1") == pytest.approx(
        metrics.f1_score(*binary, pos_label="1", average="binary", zero_division=0))


def test_matthews_by_hand():
    # CoLA-like: 2x2 table tp=3, tn=2, fp=1, fn=0 -> (3*2 - 1*0) / sqrt(4*3*2*3)
    gold = ["1", "1", "1", "0", "0", "0"]
    pred = ["1", "1", "1", "0", "0", "1"]
    assert matthews_corrcoef(gold, pred) == pytest.approx(6 / math.sqrt(4 * 3 * 2 * 3))
    assert matthews_corrcoef(gold, ["1"] * 6) == 0.0  # constant prediction, as sklearn


tag = st.one_of(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC",
                                 "B", "I", ".", "B-x-y", "Bx-y"]),
                st.text("BIOES-.xy", min_size=1, max_size=4))


@settings(max_examples=80, deadline=None)
@given(st.lists(tag, min_size=1, max_size=10))
@example(["x", "B-PER"])
def test_bio_entities_match_seqeval_on_any_tag_strings(tags):
    """Any non-empty tag string is split and chunked as seqeval's get_entities does (odd
    tags included). Sentence by sentence: seqeval's f1_score on a list of sentences joins
    them with "O" between, which changes how an odd first tag ("x") of a later sentence
    chunks; entity_prf scores each sentence on its own."""
    labeling = pytest.importorskip("seqeval.metrics.sequence_labeling")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "seems not to be NE tag"
        assert bio_entities(tags) == set(labeling.get_entities(list(tags)))


@pytest.mark.parametrize("bad", [NAN, "", None, 3])
def test_entity_prf_refuses_tags_that_are_not_strings(bad):
    with pytest.raises(ValueError, match=r"sentence 1: tag .* is not a BIO tag"):
        entity_prf([["O"], ["B-PER", "O"]], [["O"], ["B-PER", bad]])


def test_squad_scores_refuse_non_strings_and_score_unanswerable_as_v2():
    with pytest.raises(ValueError, match="question q1: the prediction nan is not a string"):
        squad_scores({"q1": NAN}, {"q1": ["Paris"]})
    with pytest.raises(ValueError, match="question q1: gold answers must be a list"):
        squad_scores({"q1": "Paris"}, {"q1": "Paris"})  # a str, not a list of them
    # no gold answer (SQuAD 2.0's unanswerable): right when the prediction is empty
    scores = squad_scores({"q1": "", "q2": "Paris"}, {"q1": [], "q2": []})
    assert scores == {"exact_match": 50.0, "f1": 50.0}
    assert all(math.isnan(v) for v in squad_scores({}, {}).values())


def test_pearson_of_huge_values_is_scale_free():
    # x = 1e308 * [1, 1, 0]: the plain sum overflowed to inf and the result was nan
    assert pearson([1e308, 1e308, 0.0], [1.0, 2.0, 3.0]) == pytest.approx(
        pearson([1.0, 1.0, 0.0], [1.0, 2.0, 3.0])) == pytest.approx(-math.sqrt(3) / 2)
