"""Sentence similarity: cosine of pooled embeddings, scored by Spearman against gold scores.

Zero-shot: embed both sentences with the checkpoint as an Embedder (its sentence-transformers
pooling and normalisation when it has them) and correlate their cosine with the gold score.
Fine-tuning: sentence-transformers' CosineSimilarityLoss, the mean-squared error between
cos(u, v) and the gold score divided by `max_score` (STS-B's 0..5 becomes 0..1). Gold scores
must be finite numbers in [0, max_score]; others are refused with their file:line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.batching import collate
from unmask.tasks.base import Task
from unmask.tasks.metrics import pearson, spearman
from unmask.tasks.readers import DataError, RowExample, parse_number, read_rows


class SimilarityTask(Task):
    """Sentence-pair scores with an Embedder. max_score: the top of the gold scale."""

    name = "similarity"
    metric = "spearman"
    model_task = "embedding"

    def __init__(self, model_path, max_score: float = 5.0, **kwargs: Any):
        if not 0 < max_score < float("inf"):  # NaN fails too; checked before loading anything
            raise ValueError(f"max_score (--max-score) must be a positive number, got "
                             f"{max_score}: the top of the gold scale, 5 for STS-B")
        super().__init__(model_path, **kwargs)
        self.max_score = max_score

    def read(self, path: str | Path) -> list[RowExample]:
        rows = read_rows(path)
        self.check_labels(rows, path)
        return rows

    def check_labels(self, examples: Sequence[RowExample], path) -> None:
        """DataError at the first row without two sentences or a score in [0, max_score]."""
        for r in examples:
            if r.text_pair is None:
                raise DataError(path, r.line, "similarity needs two sentences and a score per "
                                "row (sentence1, sentence2, score)")
            score = parse_number(r.label)
            if score is None:
                raise DataError(path, r.line, f"score {r.label!r} is not a finite number")
            if not 0 <= score <= self.max_score:
                raise DataError(path, r.line, f"score {r.label!r} is outside 0..{self.max_score}"
                                "; pass the top of the scale as --max-score, or rescale the "
                                "scores to start at 0")

    fit_labels = check_labels  # training examples need the same checks

    def build_model(self) -> nn.Module:
        # Padded SDPA: training batches are length-sorted, so padding is small, and the
        # unpadded path's one attention call per distinct length is slow in backward.
        return self.load(backend="sdpa")

    def features(self, examples: Sequence[RowExample], train: bool) -> list[dict]:
        a = self.tokenizer.encode_batch([e.text for e in examples], max_length=self.max_length,
                                        padding=False).input_ids
        b = self.tokenizer.encode_batch([e.text_pair for e in examples],
                                        max_length=self.max_length, padding=False).input_ids
        # input_ids: the longer of the two, only to size batches by tokens.
        return [{"input_ids": max(x, y, key=len), "a_input_ids": x, "b_input_ids": y,
                 "labels": float(e.label) / self.max_score} for e, x, y in zip(examples, a, b)]

    def inputs(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        labels = torch.tensor([f["labels"] for f in batch], dtype=torch.float32)
        return {**collate(batch, self.pad_id, "a_"), **collate(batch, self.pad_id, "b_"),
                "labels": labels}

    def loss_sum(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Squared error of cos(u, v) against the scaled gold score, summed over the pairs."""
        u, v = (model(inputs[p + "input_ids"], inputs[p + "attention_mask"],
                      inputs[p + "token_type_ids"]).embeddings for p in ("a_", "b_"))  # (B, H)
        return F.mse_loss(F.cosine_similarity(u, v).float(), inputs["labels"], reduction="sum")

    def scores(self, model: nn.Module, examples: Sequence[RowExample]) -> list[float]:
        """Cosine similarity of each pair, with Embedder.encode (its max_length)."""
        was_training = model.training
        model.eval()
        u = model.encode([e.text for e in examples], self.tokenizer)  # (N, H)
        v = model.encode([e.text_pair for e in examples], self.tokenizer)
        model.train(was_training)
        return F.cosine_similarity(u, v).tolist()

    def evaluate(self, model: nn.Module, examples: Sequence[RowExample]) -> dict[str, Any]:
        pred = self.scores(model, examples)
        gold = [float(e.label) for e in examples]
        out = {"spearman": spearman(gold, pred), "pearson": pearson(gold, pred)}
        return {"metric": out["spearman"], **out, "pairs": len(examples)}


__all__ = ["SimilarityTask"]
