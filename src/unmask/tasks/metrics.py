"""Task metrics, computed the standard way (plain Python: no scipy, sklearn or seqeval needed).

  accuracy, macro_f1            sequence classification (macro over labels seen in gold or
                                predictions, as sklearn's f1_score(average="macro"))
  pearson, spearman             scores; Spearman ranks ties by their average rank (scipy)
  bio_entities, entity_prf      NER, as seqeval's default (conlleval) mode: an entity is an
                                exact (type, start, end) span, and an I- tag after O or after
                                another type starts a new entity
  squad_normalize, squad_em,    the official SQuAD v1.1 evaluation script: lower-case, drop
  squad_f1, squad_scores        punctuation and articles (a / an / the), collapse spaces;
                                the best score over the gold answers; percentages

NaN in, NaN out: a NaN anywhere in the inputs (a diverged model's predictions, a gold file
with "nan" scores) makes the score NaN, never a number that looks real (sorting NaN gives
arbitrary ranks, and NaN != NaN counts it as a miss). Empty inputs score NaN (undefined).
Fine-tuning treats a NaN metric as the worst. Tags and answers that are not strings raise
ValueError.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from itertools import groupby


def _has_nan(values: Sequence) -> bool:
    """True when an item is NaN (the one value unequal to itself: float, numpy, torch)."""
    return any(v != v for v in values)  # noqa: PLR0124 (the NaN test for any number type)


def _undefined(gold: Sequence, pred: Sequence) -> bool:
    """Same lengths (else ValueError); True when the score is NaN: empty, or a NaN inside."""
    _same_length(gold, pred)
    return not len(gold) or _has_nan(gold) or _has_nan(pred)


# --- classification --------------------------------------------------------------------------

def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Fraction of positions where pred equals gold (0..1); NaN when empty or NaN inside."""
    if _undefined(gold, pred):
        return math.nan
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def _f1(gold: Sequence, pred: Sequence, label) -> float:
    """F1 of one label (0 when it is never right, as sklearn's zero_division=0)."""
    tp = sum(g == label and p == label for g, p in zip(gold, pred))
    fp = sum(g != label and p == label for g, p in zip(gold, pred))
    fn = sum(g == label and p != label for g, p in zip(gold, pred))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_f1(gold: Sequence, pred: Sequence) -> float:
    """Unweighted mean of per-label F1 over the labels in gold or pred (0..1)."""
    if _undefined(gold, pred):
        return math.nan
    labels = set(gold) | set(pred)
    return sum(_f1(gold, pred, label) for label in labels) / len(labels)


# --- correlation -----------------------------------------------------------------------------

def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences (-1..1): NaN when either is constant,
    shorter than 2, or holds a NaN or an infinity."""
    _same_length(x, y)
    if len(x) < 2 or not all(math.isfinite(v) for v in (*x, *y)):
        return math.nan
    dx, dy = _unit_deviations(x), _unit_deviations(y)
    if dx is None or dy is None:
        return math.nan
    sxy = sum(a * b for a, b in zip(dx, dy))
    return sxy / math.sqrt(sum(a * a for a in dx) * sum(b * b for b in dy))


def _unit_deviations(values: Sequence[float]) -> list[float] | None:
    """Deviations from the mean divided by the largest of them (None when all are 0): the
    correlation is scale-free, and tiny values (1e-273) no longer underflow when squared.
    The values are first divided by the largest of them, so that huge ones (1e308) do not
    overflow in the sum."""
    top = max(abs(v) for v in values)
    if top == 0:
        return None
    scaled = [v / top for v in values]
    mean = math.fsum(scaled) / len(scaled)
    deviations = [v - mean for v in scaled]
    scale = max(abs(d) for d in deviations)
    return [d / scale for d in deviations] if scale > 0 else None


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span. All NaN when a
    value is NaN (NaN has no place in an order), as scipy's rankdata."""
    if _has_nan(values):
        return [math.nan] * len(values)
    out = [0.0] * len(values)
    start = 0  # 0-based rank of the tie group's first value
    order = sorted(range(len(values)), key=values.__getitem__)
    for _, group in groupby(order, key=values.__getitem__):
        tied = list(group)
        for k in tied:
            out[k] = start + (len(tied) + 1) / 2
        start += len(tied)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson of the average ranks (NaN as pearson)."""
    return pearson(ranks(x), ranks(y))


# --- NER -------------------------------------------------------------------------------------

def _split(tag: str) -> tuple[str, str]:
    """(prefix, type) as seqeval: "B-PER" -> ("B", "PER"), "O" -> ("O", "_")."""
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"tag {tag!r} is not a BIO tag: tags are strings such as 'O', "
                         "'B-TYPE', 'I-TYPE'")
    return tag[0], tag[1:].split("-", 1)[-1] or "_"


def bio_entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities (type, first, last) of one BIO/IOBES tag sequence, as seqeval.get_entities.

    A chunk ends before B, O, or a change of type; it starts at B, or at I whose previous tag
    is O or of another type (conlleval's lenient rule, seqeval's default)."""
    out = set()
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = _split(chunk)
        if _ends(prev_tag, tag, prev_type, type_):
            out.add((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return out


def _ends(prev_tag, tag, prev_type, type_) -> bool:
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _starts(prev_tag, tag, prev_type, type_) -> bool:
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def entity_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 (0..1) of exact (type, span) entities over sentences.

    gold, pred: one tag list per sentence, equal lengths; a tag that is not a non-empty
    string (NaN from a spreadsheet) raises ValueError. Returns {"precision", "recall", "f1",
    "gold", "predicted", "correct"} (the last three are counts); precision / recall / F1
    are 0 when there is nothing to divide by, as seqeval."""
    _same_length(gold, pred)
    n_gold = n_pred = correct = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        try:
            eg, ep = bio_entities(g), bio_entities(p)
        except ValueError as err:
            raise ValueError(f"sentence {i}: {err}") from None
        n_gold, n_pred, correct = n_gold + len(eg), n_pred + len(ep), correct + len(eg & ep)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold": n_gold,
            "predicted": n_pred, "correct": correct}


# --- SQuAD -----------------------------------------------------------------------------------

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(s: str) -> str:
    """The official normalize_answer: lower, remove punctuation, articles, extra spaces."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def squad_em(prediction: str, truth: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(squad_normalize(prediction) == squad_normalize(truth))


def squad_f1(prediction: str, truth: str) -> float:
    """Bag-of-tokens F1 of the normalised strings (the official f1_score)."""
    p, t = squad_normalize(prediction).split(), squad_normalize(truth).split()
    same = sum((Counter(p) & Counter(t)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], answers: dict[str, Sequence[str]]
                 ) -> dict[str, float]:
    """{"exact_match", "f1"} in percent over the questions of `answers` (id -> gold texts),
    each the max over that question's gold answers; a question without a prediction scores 0,
    as in the official script. A question without gold answers (unanswerable, SQuAD 2.0)
    scores 1 for an empty prediction and 0 otherwise, as the v2.0 script. NaN when there are
    no questions; ValueError when a prediction or answer is not a string."""
    if not answers:
        return {"exact_match": math.nan, "f1": math.nan}
    em = f1 = 0.0
    for qid, truths in answers.items():
        if isinstance(truths, str) or not all(isinstance(t, str) for t in truths):
            raise ValueError(f"question {qid}: gold answers must be a list of strings, got "
                             f"{truths!r}")
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        if not isinstance(prediction, str):
            raise ValueError(  # noqa: TRY004 (the CLI prints a ValueError as one line)
                f"question {qid}: the prediction {prediction!r} is not a string")
        if not truths:
            blank = float(not squad_normalize(prediction))
            em, f1 = em + blank, f1 + blank
            continue
        em += max(squad_em(prediction, t) for t in truths)
        f1 += max(squad_f1(prediction, t) for t in truths)
    return {"exact_match": 100.0 * em / len(answers), "f1": 100.0 * f1 / len(answers)}


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"gold has {len(a)} items but predictions {len(b)}")


# --- GLUE: Matthews correlation (CoLA), binary F1 (MRPC, QQP) -------------------------------

def matthews_corrcoef(gold: Sequence, pred: Sequence) -> float:
    """Matthews correlation coefficient over any number of labels (-1..1), as sklearn's
    matthews_corrcoef: 0 when the predictions (or the gold labels) are all one class; NaN
    when empty or a NaN inside."""
    if _undefined(gold, pred):
        return math.nan
    n = len(gold)
    truth, guess = Counter(gold), Counter(pred)
    correct = sum(g == p for g, p in zip(gold, pred))
    cov_yp = correct * n - sum(truth[k] * guess[k] for k in truth)
    cov_pp = n * n - sum(v * v for v in guess.values())
    cov_yy = n * n - sum(v * v for v in truth.values())
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return cov_yp / math.sqrt(cov_pp * cov_yy)


def binary_f1(gold: Sequence, pred: Sequence, positive="1") -> float:
    """F1 of the `positive` label (0..1), as sklearn's f1_score(average="binary"); 0 when
    there is no true positive; NaN when empty or a NaN inside."""
    if _undefined(gold, pred):
        return math.nan
    return _f1(gold, pred, positive)


__all__ = ["accuracy", "binary_f1", "bio_entities", "entity_prf", "macro_f1",
           "matthews_corrcoef", "pearson", "ranks", "spearman", "squad_em", "squad_f1",
           "squad_normalize", "squad_scores"]
