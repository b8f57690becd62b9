"""The fine-tuning recipe: a task's model and batches, trained by the same engine as pretraining.

The Task turns files into features, a batch into a summed loss and a model into metrics; the
engine (unmask.train.loop.Trainer) does the rest: accumulation, torchrun / DDP, bf16, compile,
the schedule, checkpoints and exact --resume, metrics.jsonl and loss.png, early stopping on
the dev metric. The best model is written to out/model (unmask) and out/hf (Hugging Face
layout with label names, tokenizer files alongside). ELECTRA / DeBERTa's recipe pieces
(layer_decay, freeze_embeddings, freeze_layers: unmask.train.optim) are settings:

    finetune(task, "train.tsv", "dev.tsv", "out", Settings.finetuning(lr=1e-4, layer_decay=0.8))
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from unmask.batching import POOL_BATCHES, TaskBatches
from unmask.tasks.base import Task, TaskObjective
from unmask.train import distributed
from unmask.train.loop import EarlyStopping, Trainer
from unmask.train.optim import freeze
from unmask.train.settings import Settings


def finetune(task: Task, train_file: str | Path, dev_file: str | Path, out: str | Path,
             settings: Settings | None = None, *, max_train: int = 0,
             group_by_length: bool = True, train_examples: list | None = None,
             dev_examples: list | None = None) -> dict[str, Any]:
    """Fine-tune task.model_path on train_file, keep the best model on dev_file, save it.

    task: a Task (its batch_size / batch_tokens are the rows / padded tokens per process per
      micro-batch). out: the run folder (settings.out is replaced by it).
    settings: run settings; default Settings.finetuning() (BERT's recipe, 3 epochs).
    max_train: use only the first N training examples (0 = all).
    group_by_length: batches of rows of similar length (little padding); False = random rows,
      as the transformers Trainer.
    train_examples / dev_examples: already-read examples (the file names then only appear in
      messages).
    Works alone or under torchrun (every process evaluates the whole dev set). Returns a
    summary (also written to out/results.json): the best dev metrics and their step, every
    evaluation, why it stopped, timings, the settings.
    """
    started = time.perf_counter()
    settings = replace(settings or Settings.finetuning(), out=str(out))
    d = distributed.setup(settings.device)
    train = train_examples if train_examples is not None else task.read(train_file)
    dev = dev_examples if dev_examples is not None else task.read(dev_file)
    if max_train:
        train = train[:max_train]
    task.fit_labels(train, train_file)
    task.check_labels(dev, dev_file)
    features = task.features(train, train=True)
    if not features:
        raise ValueError(f"{train_file}: no training examples")
    task.device = d.device
    torch.manual_seed(settings.seed)  # the new head starts the same on every rank
    model = task.build_model().train()
    # Skips the padding: most of a random batch, a little of a length-grouped one (timings:
    # benchmarks/RESULTS.md). Both layouts give the same results; the layout is not saved.
    model.encoder.layout = "unpadded"
    freeze(model, settings.freeze_embeddings, settings.freeze_layers)
    data = TaskBatches(features, task.batch_size, task.batch_tokens, settings.seed, d.rank,
                       d.world_size, POOL_BATCHES if group_by_length else 1)
    recipe = {"task": task.name, "model": str(task.model_path), "max_length": task.max_length,
              "batch_size": task.batch_size, "batch_tokens": task.batch_tokens,
              "max_train": max_train, "group_by_length": group_by_length}
    trainer = Trainer(TaskObjective(task, model), data, settings,
                      evaluate=lambda: task.evaluate(model, dev),
                      early_stopping=EarlyStopping("metric", True, settings.patience),
                      tokenizer=task.model_path, recipe=recipe, dist=d)
    result = trainer.run()
    summary = {"task": task.name, "metric": task.metric, "best": result["best"],
               "history": result["history"], "stopped": result["stopped"],
               "steps": result["step"], "train_examples": len(train),
               "train_features": len(features),
               "train_seconds": round(result["elapsed"] - result["eval_seconds"], 2),
               "eval_seconds": round(result["eval_seconds"], 2),
               "total_seconds": round(time.perf_counter() - started, 2),
               "settings": settings.to_dict(), "model": str(task.model_path)}
    if d.is_main:
        (Path(out) / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["finetune"]
