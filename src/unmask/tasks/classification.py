"""Sequence classification of single sentences or sentence pairs, and score regression.

Labels come from the training file: class names (sorted; numerically when they are all
integers, so SST-2's 0 / 1 keep their order), or real-valued scores, which make it a
regression (one output, mean-squared error) reported with Pearson and Spearman. A number is
a plain finite decimal (readers.parse_number; the readers refuse nan and inf).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from torch import nn

from unmask.tasks.base import Task, model_inputs
from unmask.tasks.metrics import accuracy, macro_f1, pearson, spearman
from unmask.tasks.readers import DataError, RowExample, check_label, parse_number, read_rows


class ClassifyTask(Task):
    """Sentence (pair) classification; regression when the labels are scores.

    regression: None = decide from the training labels (any non-integer number -> scores).
    """

    name = "classify"
    model_task = "sequence_classification"

    def __init__(self, model_path, regression: bool | None = None, **kwargs: Any):
        super().__init__(model_path, **kwargs)
        self.regression = regression

    @property
    def metric(self) -> str:
        return "spearman" if self.regression else "accuracy"

    def read(self, path: str | Path) -> list[RowExample]:
        rows = read_rows(path)
        self._check_rows(rows, path)
        return rows

    def _check_rows(self, examples: Sequence[RowExample], path) -> None:
        """check_label on every row, then for a regression a finite score on every row."""
        for e in examples:  # examples may come from elsewhere than read()
            check_label(path, e.line, e.label)
        if self.regression:
            for e in examples:
                if parse_number(e.label) is None:
                    raise DataError(path, e.line, f"score {e.label!r} is not a finite number")

    def fit_labels(self, examples: Sequence[RowExample], path) -> None:
        names = sorted({e.label for e in examples})
        values = {n: parse_number(n) for n in names}
        numeric = all(v is not None for v in values.values())
        if self.regression is None:
            self.regression = numeric and any(not v.is_integer() for v in values.values())
        self._check_rows(examples, path)
        if self.regression:
            return
        if numeric:  # class ids: in numeric order, and each number spelt one way
            names.sort(key=values.__getitem__)
            for a, b in pairwise(names):
                if values[a] == values[b]:
                    line = next(e.line for e in examples if e.label == b)
                    raise DataError(path, line, f"labels {a!r} and {b!r} are the same number "
                                    "spelt two ways; write every label the same way")
        if len(names) < 2:
            raise DataError(path, None, f"only one label ({names}); classification needs at "
                            "least two (for scores, pass --regression)")
        self.labels = names

    def check_labels(self, examples: Sequence[RowExample], path) -> None:
        self._check_rows(examples, path)
        if self.regression:
            return
        known = set(self.labels)
        for e in examples:
            if e.label not in known:
                raise DataError(path, e.line, f"unknown label {e.label!r}; the model's labels "
                                f"are {self.labels}")

    def labels_from(self, model: nn.Module) -> None:
        self.regression = model.num_labels == 1
        if not self.regression:
            id2label = model.id2label or {i: str(i) for i in range(model.num_labels)}
            self.labels = [id2label[i] for i in range(model.num_labels)]

    def build_model(self) -> nn.Module:
        if self.regression:
            return self.load(num_labels=1, id2label={0: "score"}, problem_type="regression")
        return self.load(num_labels=len(self.labels), id2label=dict(enumerate(self.labels)),
                         problem_type="single_label_classification")

    def features(self, examples: Sequence[RowExample], train: bool) -> list[dict]:
        pairs = [e.text if e.text_pair is None else (e.text, e.text_pair) for e in examples]
        enc = self.tokenizer.encode_batch(pairs, max_length=self.max_length, padding=False)
        index = {n: i for i, n in enumerate(self.labels)}
        return [{"input_ids": ids, "token_type_ids": types,
                 "labels": float(e.label) if self.regression else index.get(e.label, -100)}
                for e, ids, types in zip(examples, enc.input_ids, enc.token_type_ids)]

    def predict(self, model: nn.Module, examples: Sequence[RowExample]) -> list:
        """Predicted label names (or float scores for regression), one per example."""
        def fn(m, feats, padded):
            logits = m(**model_inputs(padded)).logits  # (B, C)
            if self.regression:
                return logits[:, 0].float().tolist()
            return [self.labels[i] for i in logits.argmax(-1).tolist()]

        return self.run(model, self.features(examples, train=False), fn)

    def evaluate(self, model: nn.Module, examples: Sequence[RowExample]) -> dict[str, Any]:
        pred = self.predict(model, examples)
        if self.regression:
            gold = [float(e.label) for e in examples]
            out = {"pearson": pearson(gold, pred), "spearman": spearman(gold, pred)}
        else:
            gold = [e.label for e in examples]
            out = {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred)}
        return {"metric": out[self.metric], **out, "examples": len(examples)}


__all__ = ["ClassifyTask"]
