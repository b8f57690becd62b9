"""The fine-tuning loop: AdamW with warmup and linear decay, clipping, evaluation, early stop.

    task = ClassifyTask("path/to/model")
    result = finetune(task, "train.tsv", "dev.tsv", "out", TrainArgs(epochs=3))

The loop knows nothing about the task: the Task turns files into features, a batch into a
loss, and a model into metrics. The dev metric is computed after every epoch (or every
`eval_every` optimizer steps); the best model so far is written to out/unmask (unmask
format) and out/hf (Hugging Face layout with label names, tokenizer files alongside), and
training stops after `patience` evaluations without improvement or when `max_seconds` runs out.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from unmask.checkpoints import save
from unmask.tasks.base import Task
from unmask.tasks.batching import POOL_BATCHES, batches, iterate
from unmask.train.optim import adamw, schedule


@dataclass
class TrainArgs:
    """Hyper-parameters. Defaults are BERT's fine-tuning recipe (Devlin et al., appendix A)
    with the Trainer's AdamW betas / eps, so a transformers baseline can use the same.

    lr, epochs, warmup_ratio (of all optimizer steps), weight_decay (not on biases / norms),
    batch_size (rows) and batch_tokens (padded tokens) per step, clip (max grad norm; 0 off),
    bf16 (autocast on CPU / CUDA), eval_every (optimizer steps; 0 = once per epoch),
    patience (evaluations without improvement before stopping; 0 = never stop early),
    max_seconds (wall-clock budget for training; 0 = none), max_train (use only the first N
    training examples; 0 = all), seed, progress (a progress bar on stderr),
    group_by_length (batches of similar lengths, little padding; False = random batches).
    """

    lr: float = 5e-5
    epochs: float = 3.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 32
    batch_tokens: int = 8192
    clip: float = 1.0
    bf16: bool = False
    eval_every: int = 0
    patience: int = 2
    max_seconds: float = 0.0
    max_train: int = 0
    seed: int = 0
    progress: bool = True
    group_by_length: bool = True


def finetune(task: Task, train_file: str | Path, dev_file: str | Path, out: str | Path,
             args: TrainArgs | None = None, device: str = "cpu",
             train_examples: list | None = None, dev_examples: list | None = None
             ) -> dict[str, Any]:
    """Fine-tune task.model_path on train_file, pick the best model on dev_file, save it.

    train_examples / dev_examples: already-read examples (skip reading the files; the names
    are then only used in messages). Returns a summary dict (also written to
    out/results.json): the best dev metrics, the step they came from, the history of
    evaluations, timings, the arguments.
    """
    args = args or TrainArgs()
    torch.manual_seed(args.seed)
    out = Path(out)
    started = time.perf_counter()
    train = train_examples if train_examples is not None else task.read(train_file)
    dev = dev_examples if dev_examples is not None else task.read(dev_file)
    if args.max_train:
        train = train[:args.max_train]
    task.fit_labels(train, train_file)
    task.check_labels(dev, dev_file)
    features = task.features(train, train=True)
    if not features:
        raise ValueError(f"{train_file}: no training examples")
    task.device = torch.device(device)
    model = task.build_model().to(device).train()
    steps_per_epoch = len(batches(features, args.batch_size, args.batch_tokens))
    total = max(1, math.ceil(steps_per_epoch * args.epochs))
    optimizer = adamw(model, args.lr, args.weight_decay, betas=(0.9, 0.999), eps=1e-8)
    scheduler = schedule(optimizer, "linear", round(total * args.warmup_ratio), total)
    autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                if args.bf16 else contextlib.nullcontext())
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    since_best = step = 0
    train_seconds = eval_seconds = 0.0
    bar = _Bar(total, args.progress)
    stop = ""
    epoch = 0
    while not stop:
        order = batches(features, args.batch_size, args.batch_tokens, shuffle=True,
                        seed=args.seed + epoch,
                        pool_batches=POOL_BATCHES if args.group_by_length else 1)
        for k, batch in enumerate(iterate(features, order)):
            t0 = time.perf_counter()
            with autocast:
                loss = task.loss(model, batch)
            loss.backward()
            if args.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_seconds += time.perf_counter() - t0
            bar.update(step, loss.item())
            out_of_time = bool(args.max_seconds) and train_seconds >= args.max_seconds
            due = (step % args.eval_every == 0) if args.eval_every else k == len(order) - 1
            if step >= total or out_of_time or due:
                t0 = time.perf_counter()
                metrics = task.evaluate(model, dev)
                eval_seconds += time.perf_counter() - t0
                history.append({"step": step, "epoch": round(step / steps_per_epoch, 3),
                                "loss": loss.item(), **metrics})
                bar.note(f"step {step}: dev {task.metric} {metrics['metric']:.4f}")
                if best is None or _score(metrics) > _score(best):
                    best, since_best = {"step": step, **metrics}, 0
                    _save(task, model, out)
                else:
                    since_best += 1
                if args.patience and since_best >= args.patience:
                    stop = f"no dev improvement in {args.patience} evaluations"
                elif out_of_time:
                    stop = f"time budget of {args.max_seconds:.0f} s used"
                elif step >= total:
                    stop = "done"
            if stop:
                break
        epoch += 1
    bar.close()
    summary = {"task": task.name, "metric": task.metric, "best": best, "history": history,
               "stopped": stop, "steps": step, "train_examples": len(train),
               "train_features": len(features), "train_seconds": round(train_seconds, 2),
               "eval_seconds": round(eval_seconds, 2),
               "total_seconds": round(time.perf_counter() - started, 2),
               "args": asdict(args), "model": str(task.model_path)}
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _score(metrics: dict[str, Any]) -> float:
    """The headline metric, with nan (e.g. Pearson of constant predictions) as the worst."""
    value = metrics["metric"]
    return -math.inf if math.isnan(value) else value


def _save(task: Task, model: torch.nn.Module, out: Path) -> None:
    """The best model so far, in both layouts, each with the tokenizer files."""
    for fmt in ("unmask", "hf"):
        directory = out / fmt
        save(model, directory, format=fmt)
        task.save_tokenizer(directory)


class _Bar:
    """A one-line progress bar on stderr (rich when it is installed and stderr is a tty)."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.progress = None
        if self.enabled:
            from rich.progress import Progress

            self.progress = Progress(transient=False)
            self.progress.start()
            self.id = self.progress.add_task("fine-tuning", total=total)
        self.log = enabled

    def update(self, step: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.id, completed=step,
                                 description=f"fine-tuning  loss {loss:.4f}")

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        elif self.log:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


__all__ = ["TrainArgs", "finetune"]
