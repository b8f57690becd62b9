"""What every fine-tuning task provides to the training engine, and the pieces they share.

A Task reads its files, builds the model for its labels, turns examples into features
(token ids plus label fields), computes the summed training loss of a padded batch, and
evaluates a model on examples, returning metrics whose `metric` entry is the headline number
(higher is better) that early stopping watches. TaskObjective makes a task and its model an
objective of unmask.train.loop.Trainer, the same engine as pretraining.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmask.batching import collate, group
from unmask.checkpoints import load, resolve
from unmask.tokenizer import Tokenizer
from unmask.train.loop import TOKENIZER_FILES


class Task:
    """Base class: subclasses set name / metric and implement the methods below."""

    name = ""
    metric = ""  # the key of evaluate()'s result that early stopping maximises
    model_task = ""  # unmask.checkpoints task name of the model
    device = torch.device("cpu")  # where collated batches go (set by the loop)

    def __init__(self, model_path: str | Path, max_length: int = 128,
                 batch_size: int = 32, batch_tokens: int = 8192, revision: str | None = None,
                 allow_pickle: bool = False):
        self.model_path = resolve(model_path, revision, allow_pickle)
        self.allow_pickle = allow_pickle
        self.tokenizer = Tokenizer.from_pretrained(self.model_path)
        self.max_length = max_length
        self.batch_size, self.batch_tokens = batch_size, batch_tokens
        self.labels: list[str] = []  # class names or tags (fit_labels, labels_from)

    # --- subclass interface ------------------------------------------------------------------
    def read(self, path: str | Path) -> list:
        """Examples of one file (raises DataError on bad rows)."""
        raise NotImplementedError

    def fit_labels(self, examples: Sequence, path: str | Path) -> None:
        """Learn the label set from training examples (classification, NER)."""

    def check_labels(self, examples: Sequence, path: str | Path) -> None:
        """Raise DataError when `examples` use a label the model does not know."""

    def build_model(self) -> nn.Module:
        """The model to fine-tune, starting from self.model_path (default: its model_task head)."""
        return self.load()

    def features(self, examples: Sequence, train: bool) -> list[dict]:
        """Encoded features (see unmask.batching)."""
        raise NotImplementedError

    def inputs(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        """The padded tensors of a batch of features, on the CPU (the engine moves them)."""
        return collate(batch, self.pad_id)

    def count(self, inputs: dict[str, torch.Tensor]) -> int:
        """How many items the loss of `inputs` sums over (rows; NER: labelled tokens)."""
        return len(next(iter(inputs.values())))

    def loss_sum(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training loss of a batch, summed over its count() items: the model's mean
        loss times the count (the engine divides by the count of the whole global batch)."""
        return model(**inputs).loss * self.count(inputs)

    def evaluate(self, model: nn.Module, examples: Sequence) -> dict[str, Any]:
        """Metrics of `model` on `examples`; must contain "metric"."""
        raise NotImplementedError

    def labels_from(self, model: nn.Module) -> None:
        """Take the label names from a trained model (for `unmask evaluate`)."""

    # --- shared ------------------------------------------------------------------------------
    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def load(self, **kwargs: Any) -> nn.Module:
        """checkpoints.load of model_path as this task, quiet about the new head it adds
        (it is about to be trained)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="newly initialised")
            return load(self.model_path, task=self.model_task, allow_pickle=self.allow_pickle,
                        **kwargs)

    @torch.inference_mode()
    def run(self, model: nn.Module, features: Sequence[dict], fn) -> list:
        """Apply fn(model, batch_features, padded_inputs) -> list per row over all features in
        length-sorted batches; returns the rows' results in the order of `features`."""
        was_training = model.training
        model.eval()
        out: list = [None] * len(features)
        order = group([len(f["input_ids"]) for f in features], self.batch_size * 2,
                      self.batch_tokens * 2)
        for rows in order:
            feats = [features[i] for i in rows]
            padded = {k: v.to(self.device) for k, v in collate(feats, self.pad_id).items()}
            for i, value in zip(rows, fn(model, feats, padded)):
                out[i] = value
        model.train(was_training)
        return out


class TaskObjective(nn.Module):
    """A task and its model as an objective of the training engine (unmask.train.loop).

    prepare(features) -> (padded inputs, counts float64 (1,)); forward(**inputs) ->
    (loss sum float32 (1,), stats float64 (2,) [loss sum, count]).
    """

    stat_names = ("loss_sum", "count")
    weights = (1.0,)

    def __init__(self, task: Task, model: nn.Module):
        super().__init__()
        self.task, self.model, self.title = task, model, f"fine-tuning {task.name}"

    def prepare(self, batch: list[dict]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs = self.task.inputs(batch)
        return inputs, torch.tensor([float(self.task.count(inputs))], dtype=torch.float64)

    def forward(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.task.loss_sum(self.model, inputs).float()
        n = torch.tensor(float(self.task.count(inputs)), dtype=torch.float64,
                         device=total.device)
        return total[None], torch.stack([total.detach().double(), n])

    @staticmethod
    def metrics(stats: dict[str, float]) -> dict[str, float]:
        return {"loss": stats["loss_sum"] / max(stats["count"], 1.0)}

    def models(self) -> dict[str, nn.Module]:
        return {"model": self.model}


def model_inputs(padded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder arguments of a collated batch."""
    return {k: padded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


__all__ = ["TOKENIZER_FILES", "Task", "TaskObjective", "model_inputs"]
