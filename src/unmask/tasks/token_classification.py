"""Token classification (NER) from CoNLL BIO data.

Each word's tag is learnt and predicted at its first sub-token; the other sub-tokens,
[CLS] / [SEP] and padding carry -100. Evaluation is per word against every gold tag of the
file: a word cut off by max_length, or one the tokenizer turns into no token at all, is
predicted "O" (it still counts in the gold entities). Entity precision / recall / F1 are
seqeval's (exact span and type).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.heads import IGNORE_INDEX
from unmask.tasks.base import Task, model_inputs
from unmask.tasks.metrics import accuracy, entity_prf
from unmask.tasks.readers import DataError, TaggedSentence, read_conll


def _first_tokens(word_ids: Sequence[int]) -> dict[int, int]:
    """Word -> position of its first sub-token (special tokens, word id -1, left out)."""
    return {w: k for k, w in reversed(list(enumerate(word_ids))) if w >= 0}  # first one wins


class NerTask(Task):
    """BIO tagging with a TokenClassifier."""

    name = "ner"
    metric = "f1"
    model_task = "token_classification"

    def read(self, path: str | Path) -> list[TaggedSentence]:
        return read_conll(path)

    def fit_labels(self, examples: Sequence[TaggedSentence], path) -> None:
        types = sorted({t[2:] for e in examples for t in e.tags if t != "O"})
        # Every type gets both B- and I- (a type seen only as B- in training still has I-).
        self.labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def check_labels(self, examples: Sequence[TaggedSentence], path) -> None:
        known = set(self.labels)
        for e in examples:
            for k, tag in enumerate(e.tags):
                if tag not in known:
                    raise DataError(path, e.line + k, f"unknown tag {tag!r}; the model's tags "
                                    f"are {self.labels}")

    def labels_from(self, model: nn.Module) -> None:
        id2label = model.id2label or {}
        self.labels = [id2label.get(i, f"LABEL_{i}") for i in range(model.num_labels)]

    def build_model(self) -> nn.Module:
        return self.load(num_labels=len(self.labels), id2label=dict(enumerate(self.labels)))

    def features(self, examples: Sequence[TaggedSentence], train: bool) -> list[dict]:
        enc = self.tokenizer.encode_batch([e.words for e in examples], is_split_into_words=True,
                                          max_length=self.max_length, padding=False)
        index = {t: i for i, t in enumerate(self.labels)}
        out = []
        for e, ids, types, words in zip(examples, enc.input_ids, enc.token_type_ids,
                                        enc.word_ids):
            labels = [IGNORE_INDEX] * len(words)
            for w, k in _first_tokens(words).items():
                labels[k] = index.get(e.tags[w], IGNORE_INDEX)
            out.append({"input_ids": ids, "token_type_ids": types, "labels": labels,
                        "_word_ids": words})
        return out

    def count(self, inputs: dict[str, torch.Tensor]) -> int:
        return int((inputs["labels"] != IGNORE_INDEX).sum())

    def loss_sum(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy summed over the labelled first sub-tokens (0 when there are none)."""
        logits = model(**model_inputs(inputs)).logits  # (B, L, C)
        return F.cross_entropy(logits.flatten(0, 1).float(), inputs["labels"].flatten(),
                               ignore_index=IGNORE_INDEX, reduction="sum")

    def predict(self, model: nn.Module, examples: Sequence[TaggedSentence]) -> list[list[str]]:
        """Predicted tags, one list per sentence, one tag per word."""
        def fn(m, feats, padded):
            best = m(**model_inputs(padded)).logits.argmax(-1).tolist()  # (B, L)
            return [{w: self.labels[row[k]] for w, k in _first_tokens(f["_word_ids"]).items()}
                    for f, row in zip(feats, best)]

        found = self.run(model, self.features(examples, train=False), fn)
        return [[tags.get(w, "O") for w in range(len(e.words))] for e, tags in zip(examples, found)]

    def evaluate(self, model: nn.Module, examples: Sequence[TaggedSentence]) -> dict[str, Any]:
        pred = self.predict(model, examples)
        gold = [e.tags for e in examples]
        scores = entity_prf(gold, pred)
        token_accuracy = accuracy([t for s in gold for t in s], [t for s in pred for t in s])
        return {"metric": scores["f1"], **scores, "token_accuracy": token_accuracy,
                "sentences": len(examples)}


__all__ = ["NerTask"]
