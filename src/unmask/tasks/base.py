"""What every fine-tuning task provides to the loop, and the pieces they share.

A Task reads its files, builds the model for its labels, turns examples into features
(token ids plus label fields), computes the training loss of a padded batch, and evaluates
a model on examples, returning metrics whose `metric` entry is the headline number
(higher is better) that early stopping watches.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmask.checkpoints import load, resolve
from unmask.tasks.batching import batches, collate, iterate
from unmask.tokenizer import Tokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "vocab.json", "merges.txt")


class Task:
    """Base class: subclasses set name / metric and implement the methods below."""

    name = ""
    metric = ""  # the key of evaluate()'s result that early stopping maximises
    model_task = ""  # unmask.checkpoints task name of the model
    device = torch.device("cpu")  # where collated batches go (set by the loop)

    def __init__(self, model_path: str | Path, max_length: int = 128,
                 batch_size: int = 32, batch_tokens: int = 8192):
        self.model_path = resolve(model_path)
        self.tokenizer = Tokenizer.from_pretrained(self.model_path)
        self.max_length = max_length
        self.batch_size, self.batch_tokens = batch_size, batch_tokens

    # --- subclass interface ------------------------------------------------------------------
    def read(self, path: str | Path) -> list:
        """Examples of one file (raises DataError on bad rows)."""
        raise NotImplementedError

    def fit_labels(self, examples: Sequence, path: str | Path) -> None:
        """Learn the label set from training examples (classification, NER)."""

    def check_labels(self, examples: Sequence, path: str | Path) -> None:
        """Raise DataError when `examples` use a label the model does not know."""

    def build_model(self) -> nn.Module:
        """The model to fine-tune, starting from self.model_path."""
        raise NotImplementedError

    def features(self, examples: Sequence, train: bool) -> list[dict]:
        """Encoded features (see unmask.tasks.batching)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: list[dict]) -> torch.Tensor:
        """Scalar training loss of one batch of features."""
        return model(**self.collate(batch)).loss

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
            return load(self.model_path, task=self.model_task, **kwargs)

    @torch.inference_mode()
    def run(self, model: nn.Module, features: Sequence[dict], fn) -> list:
        """Apply fn(model, batch_features, padded_inputs) -> list per row over all features in
        length-sorted batches; returns the rows' results in the order of `features`."""
        was_training = model.training
        model.eval()
        out: list = [None] * len(features)
        order = batches(features, self.batch_size * 2, self.batch_tokens * 2)
        for rows, feats in zip(order, iterate(features, order)):
            for i, value in zip(rows, fn(model, feats, self.collate(feats))):
                out[i] = value
        model.train(was_training)
        return out

    def collate(self, batch: list[dict], prefix: str = "") -> dict[str, torch.Tensor]:
        """batching.collate, on self.device."""
        return {k: v.to(self.device) for k, v in collate(batch, self.pad_id, prefix).items()}

    def save_tokenizer(self, directory: Path) -> None:
        """Copy the tokenizer files next to a saved model, so it loads on its own."""
        for name in TOKENIZER_FILES:
            if (self.model_path / name).is_file():
                shutil.copy(self.model_path / name, directory / name)


def model_inputs(padded: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder arguments of a collated batch."""
    return {k: padded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


__all__ = ["TOKENIZER_FILES", "Task", "model_inputs"]
