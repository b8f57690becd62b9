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
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

# --- classification --------------------------------------------------------------------------

def accuracy(gold: Sequence, pred: Sequence) -> float:
    """Fraction of positions where pred equals gold (0..1)."""
    _same_length(gold, pred)
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def macro_f1(gold: Sequence, pred: Sequence) -> float:
    """Unweighted mean of per-label F1 over the labels in gold or pred (0..1)."""
    _same_length(gold, pred)
    labels = set(gold) | set(pred)
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


# --- correlation -----------------------------------------------------------------------------

def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences (nan when either is constant)."""
    _same_length(x, y)
    dx, dy = _unit_deviations(x), _unit_deviations(y)
    if dx is None or dy is None:
        return math.nan
    sxy = sum(a * b for a, b in zip(dx, dy))
    return sxy / math.sqrt(sum(a * a for a in dx) * sum(b * b for b in dy))


def _unit_deviations(values: Sequence[float]) -> list[float] | None:
    """Deviations from the mean divided by the largest of them (None when all are 0): the
    correlation is scale-free, and tiny values (1e-273) no longer underflow when squared."""
    mean = sum(values) / len(values)
    deviations = [v - mean for v in values]
    scale = max(abs(d) for d in deviations)
    return [d / scale for d in deviations] if scale > 0 else None


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson of the average ranks."""
    return pearson(ranks(x), ranks(y))


# --- NER -------------------------------------------------------------------------------------

def _split(tag: str) -> tuple[str, str]:
    return (tag, "") if tag == "O" else (tag[0], tag[2:] if tag[1:2] == "-" else tag[1:])


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
            or (prev_tag != "O" and prev_type != type_))


def _starts(prev_tag, tag, prev_type, type_) -> bool:
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag != "O" and prev_type != type_))


def entity_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 (0..1) of exact (type, span) entities over sentences.

    gold, pred: one tag list per sentence, equal lengths. Returns {"precision", "recall",
    "f1", "gold", "predicted", "correct"} (the last three are counts)."""
    _same_length(gold, pred)
    n_gold = n_pred = correct = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        eg, ep = bio_entities(g), bio_entities(p)
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
    as in the official script."""
    em = f1 = 0.0
    for qid, truths in answers.items():
        if qid in predictions:
            em += max(squad_em(predictions[qid], t) for t in truths)
            f1 += max(squad_f1(predictions[qid], t) for t in truths)
    n = len(answers)
    return {"exact_match": 100.0 * em / n if n else 0.0, "f1": 100.0 * f1 / n if n else 0.0}


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"gold has {len(a)} items but predictions {len(b)}")


__all__ = ["accuracy", "bio_entities", "entity_prf", "macro_f1", "pearson", "ranks", "spearman",
           "squad_em", "squad_f1", "squad_normalize", "squad_scores"]
