"""One training engine for pretraining and fine-tuning, alone or under torchrun.

    trainer = Trainer(objective, data, Settings(out="run/", steps=2000), evaluate=dev_metrics)
    result = trainer.run()

The trainer knows nothing of models (minGPT's rule). A recipe (unmask.train.pretrain,
unmask.tasks.finetune) builds them and hands in:

  objective  an nn.Module with prepare(batch) -> (inputs, counts), the CPU work (corruption,
             padding, segment layout) with counts float64 (K,) the denominators of its K loss
             terms; forward(**inputs) -> (terms, stats), terms float (K,) differentiable loss
             *sums* and stats float64 (len(stat_names),) detached sums; weights (K floats);
             metrics(stats by name) -> {"loss", ...}; models() -> {name: model to save}.
  data       an endless iterator of this rank's micro-batches with steps_per_epoch,
             state_dict() and load_state_dict() (exact resume).
  evaluate   () -> metrics or None, called on every rank under the run's autocast.

A step: take `accumulate` micro-batches, prepare them, sum their counts over the whole global
batch (one all-reduce), run forward/backward (bf16 autocast when asked), synchronise gradients
only on the last micro-batch, clip, set the learning rate, step AdamW. Every term is divided by
its global denominator, so W ranks x B rows compute the same update as one process with W*B
rows. A non-finite loss or gradient norm stops the run before the step, naming it.

Every `save_every` steps a checkpoint holds the models, optimizer, step, data cursor, early
stopping state and every rank's RNG (unmask.train.resume); `resume` continues from the
newest intact one with the uninterrupted run's losses. A run folder that already holds a run
is refused unless the settings say resume or overwrite.

Sharded (settings.shard, FSDP2: unmask.train.distributed.shard) instead of DDP, every process
holds 1/W of the weights, gradients and AdamW state; the step is the same sum over the global
batch. Its checkpoints resume with another number of processes W' when the global batch stays
the same (the recipe's PER_PROCESS sizes x W' = the saved ones x W: 2 processes of batch_size
4 -> 1 of batch_size 8; the data cursor is re-split): the same batches, corruption and
updates, so the same losses to float tolerance, except for dropout (its masks are drawn per
process). Saved models are gathered whole on rank 0's CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unmask.checkpoints import save as save_model
from unmask.hardware import cpu_has_bf16
from unmask.tokenizer.files import TOKENIZER_FILES
from unmask.train import distributed
from unmask.train.allocator import keep_freed_memory
from unmask.train.optim import adamw, lr_factor
from unmask.train.report import MetricsLog, Progress, save_loss_curve
from unmask.train.resume import CheckpointWriter, apply_checkpoint, find_checkpoint
from unmask.train.settings import RESUMABLE, Settings, fields_by_name

# Recipe settings counted per process: with W processes the global batch is W times them.
PER_PROCESS = ("batch_size", "batch_tokens")
# What marks a folder as holding a run (data/, prepared by `unmask pretrain --corpus`, does not).
RUN_FILES = ("checkpoints", "metrics.jsonl", "loss.png", "settings.json", "results.json",
             "model", "hf", "generator", "config.json", "unmask")


class TrainingDiverged(ValueError):
    """The loss or the gradient norm became nan or infinite."""


@dataclass
class EarlyStopping:
    """Keep the best model by `metric`; stop after `patience` evaluations without improvement
    (0 = never stop early). A nan or infinite metric never counts as an improvement."""

    metric: str = "metric"
    higher_is_better: bool = True
    patience: int = 0
    best: dict | None = None
    since_best: int = 0

    def update(self, step: int, metrics: dict) -> bool:
        """Record an evaluation; True when it is the best so far (save the model)."""
        value = metrics.get(self.metric)
        better = value is not None and math.isfinite(value) and (
            self.best is None or (value > self.best[self.metric]) == self.higher_is_better
            and value != self.best[self.metric])
        if better:
            self.best, self.since_best = {"step": step, **metrics}, 0
        else:
            self.since_best += 1
        return better

    @property
    def exhausted(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> list[Path]:
    """The run files already in `out`; refuses a folder holding a run unless told what to do."""
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    if found and not resume and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(p.name for p in found)}): pass --resume "
            "to continue it, --overwrite to start over, or choose another --out")
    return found


class Trainer:
    """Trains `objective` on `data` with `settings` (see the module docstring).

    early_stopping: keep the best model by a dev metric (else the last one is saved).
    tokenizer: folder whose tokenizer files are copied next to every saved model.
    recipe: JSON-able settings of what the recipe built (saved with checkpoints; a resume
    must match them). dist: an unmask.train.distributed.Dist (default: from torchrun's
    environment).
    """

    def __init__(self, objective: nn.Module, data, settings: Settings, evaluate=None,
                 early_stopping: EarlyStopping | None = None, tokenizer: str | Path | None = None,
                 recipe: dict | None = None, dist: distributed.Dist | None = None):
        self.settings = s = settings
        self.dist = d = dist or distributed.setup(s.device)
        if d.device.type == "cpu":
            keep_freed_memory()  # fewer page faults per step (unmask.train.allocator)
        self.use_bf16 = s.dtype == "bf16" or (s.dtype == "auto" and (
            d.device.type == "cuda" or cpu_has_bf16()))
        self.sharded = s.shard
        if s.shard:  # frames to save gathered weights into, then shard (which moves to device)
            self._frames = {name: meta_frame(m) for name, m in objective.models().items()}
            distributed.shard(objective, d, bf16=self.use_bf16)
        else:
            objective.to(d.device)
        self.objective, self.data, self.evaluator = objective, data, evaluate
        self.early, self.recipe = early_stopping, recipe or {}
        self.tokenizer = None if tokenizer is None else Path(tokenizer)
        self.out = Path(s.out)
        self.optimizer = adamw(objective, s.lr, s.weight_decay, s.betas, s.eps, s.layer_decay)
        self.step, self._elapsed_before, self._session_start = 0, 0.0, None
        self.history: list[dict] = []
        self.stopped, self.eval_seconds = "", 0.0
        self.run_id = uuid.uuid4().hex
        # Every rank writes into the same temporary checkpoint folder, named by rank 0's pid.
        self._tag = int(d.all_reduce_sum(torch.tensor([float(os.getpid() * d.is_main)])))
        found = check_run_dir(self.out, s.resume, s.overwrite)
        d.barrier()  # every rank looked before rank 0 changes anything
        if s.overwrite and d.is_main:
            for path in found:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        if s.resume:
            self._resume()
        else:
            torch.manual_seed(s.seed + 1 + d.rank)  # dropout differs per rank, fixed by seed
        self.iterator = iter(self.data)
        self.module: nn.Module = self.objective
        if d.enabled and not self.sharded:
            self.module = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        if s.compile:
            self.module = torch.compile(self.module, dynamic=True)
        self.weights = torch.tensor(objective.weights, dtype=torch.float32, device=d.device)
        self.log = MetricsLog(self.out / "metrics.jsonl", self.step if s.resume else None) \
            if d.is_main else None

    def say(self, text: str) -> None:
        if self.dist.is_main:
            print(text, file=sys.stderr, flush=True)

    def _resume(self) -> None:
        state = find_checkpoint(self.out, self.dist.rank, self.dist.world_size, self.say)
        if state is None:
            raise FileNotFoundError(
                f"{self.out} has no checkpoint to resume from (none in {self.out}/checkpoints "
                "reads back whole); start without --resume (--overwrite replaces what is "
                "there), or point --out at an earlier run")
        meta = state["meta"]
        self._check_resumable(meta)
        self.step = meta["step"]
        apply_checkpoint(state, self.objective, self.optimizer)
        if state["rng"] is None:  # sharded, more processes than saved: a fresh RNG of its own
            torch.manual_seed(self.settings.seed + 1 + self.dist.rank + 7919 * self.step)
        self._elapsed_before = meta["elapsed"]
        self.data.load_state_dict(resplit_cursor(meta["data"], meta.get("world_size", 1),
                                                 self.dist.world_size))
        self.run_id, self.history = meta["run_id"], meta["history"]
        if self.early is not None:
            self.early.best, self.early.since_best = meta["early_stopping"]

    def _check_resumable(self, meta: dict) -> None:
        # A setting newer than the checkpoint was at its default there.
        defaults = json.loads(json.dumps({n: f.default for n, f in fields_by_name().items()}))
        saved = {**defaults, **meta["recipe"], **meta["settings"]}
        mine = {**self.recipe, **self.settings.to_dict()}
        was, now = meta.get("world_size", 1), self.dist.world_size
        # Only sharded checkpoints get here with was != now: the global batch must stay.
        scaled = [k for k in PER_PROCESS if k in saved and k in mine] if was != now else []
        for k in (k for k in scaled if saved[k] * was != mine[k] * now):
            fix = f"--{k.replace('_', '-')} {saved[k] * was // now}" \
                if saved[k] * was % now == 0 else f"a number of processes dividing " \
                f"{saved[k] * was}"
            raise ValueError(
                f"cannot resume {self.out} with {now} process(es): it was trained with {k} "
                f"{saved[k]} x {was} process(es) per step, now {mine[k]} x {now}; resume "
                f"with {fix} (the same global batch)")
        diff = {k: (saved.get(k), v) for k, v in json.loads(json.dumps(mine)).items()
                if k not in RESUMABLE and k not in scaled and saved.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume {self.out}: settings differ from the checkpoint "
                             f"({detail}); resume with the same settings")

    # --- training ------------------------------------------------------------------------
    def autocast(self):
        """The run's dtype policy: bf16 autocast, or nothing."""
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, over every session of this run (kept across resumes)."""
        running = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self._elapsed_before + running

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.data.steps_per_epoch / self.settings.accumulate))

    def total_steps(self) -> int | None:
        """The schedule's length: steps and/or epochs, or projected from the pace so far when
        minutes are the only limit."""
        s = self.settings
        limits = [n for n in (s.steps, s.epochs and math.ceil(s.epochs * self.steps_per_epoch))
                  if n]
        if limits:
            return min(limits)
        if self.step == 0 or self.elapsed == 0:
            return None
        return max(self.step + 1, round(self.step * s.minutes * 60 / self.elapsed))

    def learning_rate(self) -> float:
        s = self.settings
        total = self.total_steps() or 10**9
        warmup = round(s.warmup * total) if s.warmup < 1 else int(s.warmup)
        if s.steps is None and s.epochs is None and s.warmup < 1:
            warmup = min(warmup, 100)  # projected totals start huge: bound the warmup
        return s.lr * lr_factor(self.step, s.schedule, warmup, total)

    def train_step(self) -> dict:
        """One optimizer step over the global batch; returns its global stats and tokens."""
        d, s = self.dist, self.settings
        micro = []
        for _ in range(s.accumulate):
            inputs, counts = self.objective.prepare(next(self.iterator))
            tokens = sum(float(v.sum()) for k, v in inputs.items() if k.endswith("attention_mask"))
            micro.append((inputs, torch.cat([counts, torch.tensor([tokens], dtype=counts.dtype)])))
        totals = d.all_reduce_sum(sum(c for _, c in micro))
        denominators = totals[:-1].clamp(min=1).to(d.device, torch.float32)
        stats = None
        self.objective.train()
        for i, (inputs, _) in enumerate(micro):
            last = i == len(micro) - 1
            if self.sharded:  # FSDP2: reduce-scatter only after the last micro-batch
                self.objective.set_requires_gradient_sync(last)
            quiet = d.enabled and not self.sharded and not last  # DDP: all-reduce on the last
            with self.module.no_sync() if quiet else contextlib.nullcontext():
                inputs = {k: v.to(d.device, non_blocking=True) for k, v in inputs.items()}
                with self.autocast():
                    terms, st = self.module(**inputs)
                # DDP and FSDP average gradients over ranks: scale by W to get the sum.
                loss = (terms.float() * self.weights / denominators).sum() * d.world_size
                loss.backward()
            stats = st.detach().cpu() if stats is None else stats + st.detach().cpu()
        stats = d.all_reduce_sum(stats)
        grad_norm = clip_gradients(self.objective.parameters(), s.clip) if s.clip else None
        lr = self.learning_rate()
        finite_loss = bool(torch.isfinite(stats).all())
        if not finite_loss or not math.isfinite(grad_norm or 0.0):
            self.optimizer.zero_grad(set_to_none=True)
            what = "gradient norm" if finite_loss else "loss"
            raise TrainingDiverged(
                f"the {what} became non-finite at step {self.step + 1} (lr {lr:.3g}): lower "
                "--lr, keep --clip on, or train in --dtype fp32; the checkpoints so far are "
                "intact (--resume continues from the last)")
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # layer-wise decay (train.optim)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"stats": stats, "tokens": float(totals[-1]), "lr": lr, "grad_norm": grad_norm}

    def metrics(self, stats: torch.Tensor) -> dict:
        """Summed stats (float64 (len(stat_names),)) -> the objective's metrics."""
        return self.objective.metrics(dict(zip(self.objective.stat_names, stats.tolist(),
                                               strict=True)))

    def evaluate(self) -> dict | None:
        """The recipe's evaluation, in eval mode, without gradients, under the run's autocast."""
        if self.evaluator is None:
            return None
        self.objective.eval()
        started = time.perf_counter()
        if self.sharded:  # the recipe may call a model directly, not the objective (root)
            self.objective.unshard()
        with torch.no_grad(), self.autocast():
            metrics = self.evaluator()
        if self.sharded:
            self.objective.reshard()
        self.eval_seconds += time.perf_counter() - started
        self.objective.train()
        return metrics

    def _should_stop(self) -> bool:
        s = self.settings
        total = self.total_steps() if s.steps or s.epochs else None
        if total is not None and self.step >= total:
            self.stopped = self.stopped or "done"
        elif s.minutes is not None and self.step > 0:  # at least one step per run
            over = self.elapsed >= s.minutes * 60
            flag = self.dist.all_reduce_sum(torch.tensor([float(over)]))  # ranks agree
            if flag.item() > 0:
                self.stopped = self.stopped or f"time budget of {s.minutes:g} min used"
        return bool(self.stopped)

    def run(self, stop_at: int | None = None) -> dict:
        """Train until the settings' length, early stopping or (as if killed right after the
        checkpoint there) `stop_at` steps. Returns {"step", "train", "eval", "best",
        "history", "stopped", "elapsed", "eval_seconds"}: the last train and eval metrics,
        the best evaluation (with early stopping), every evaluation, why it stopped, seconds
        of the run (evaluations included) and of its evaluations."""
        s, d = self.settings, self.dist
        if d.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "settings.json").write_text(json.dumps(
                {"settings": s.to_dict(), "recipe": self.recipe}, indent=1) + "\n")
        progress = Progress(self.total_steps(), s.progress and d.is_main, s.minutes)
        self._session_start = window_start = time.perf_counter()
        window_tokens, window = 0.0, None
        last_train, last_eval = {}, None
        try:
            while not self._should_stop():
                out = self.train_step()
                window = out["stats"] if window is None else window + out["stats"]
                window_tokens += out["tokens"]
                if self.step % s.log_every == 0:
                    now = time.perf_counter()
                    last_train = self._record(window, out, window_tokens / (now - window_start))
                    progress.update(self.step, last_train["loss"], last_train["tokens_per_s"],
                                    self.total_steps())
                    window_start, window_tokens, window = now, 0.0, None
                done = self._should_stop() or self.step == stop_at
                if self.step % (s.eval_every or self.steps_per_epoch) == 0 or done:
                    last_eval = self._eval_and_log(progress) or last_eval
                    done = self._should_stop() or self.step == stop_at
                if s.save_every and (self.step % s.save_every == 0 or done):
                    self.save_checkpoint()
                if self.step == stop_at:
                    return self._result(last_train, last_eval)
        finally:
            progress.close()
        if self.early is None:
            self.save_models()
        if d.is_main:
            if self.early is not None and self.early.best is None:
                self.say("warning: no evaluation gave a finite metric; no model was saved")
            self._curve()
        return self._result(last_train, last_eval)

    def _result(self, last_train: dict, last_eval: dict | None) -> dict:
        return {"step": self.step, "train": last_train, "eval": last_eval,
                "best": self.early and self.early.best, "history": self.history,
                "stopped": self.stopped or "interrupted", "elapsed": self.elapsed,
                "eval_seconds": self.eval_seconds}

    def _record(self, window: torch.Tensor, out: dict, tokens_per_s: float) -> dict:
        record = {"kind": "train", "step": self.step, **self.metrics(window), "lr": out["lr"],
                  "grad_norm": out["grad_norm"], "tokens_per_s": tokens_per_s}
        if self.log is not None:
            self.log.write(record)
        return record

    def _eval_and_log(self, progress: Progress) -> dict | None:
        metrics = self.evaluate()
        if metrics is None:
            return None
        self.history.append({"step": self.step, **metrics})
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        progress.note(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
        if self.early is not None:
            if self.early.update(self.step, metrics):  # the same on every rank
                self.save_models()
            if self.early.exhausted:
                self.stopped = self.stopped or (
                    f"no dev improvement in {self.early.patience} evaluations")
        if self.log is not None:
            self.log.write({"kind": "eval", "step": self.step, **metrics})
            self._curve()
        return metrics

    def _curve(self) -> None:
        if self.log is not None:
            save_loss_curve(self.log.records(), self.out / "loss.png",
                            getattr(self.objective, "title", type(self.objective).__name__))

    # --- saving --------------------------------------------------------------------------
    def save_models(self) -> None:
        """Every rank: the objective's models into out/ (save_models) from rank 0; sharded,
        their full weights are first gathered to rank 0's CPU (collective)."""
        if not self.sharded:
            if self.dist.is_main:
                save_models(self.objective.models(), self.out, self.tokenizer)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.objective, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True))  # empty on the other ranks
        if not self.dist.is_main:
            return
        names = {id(m): name for name, m in self.objective.named_modules()}
        for name, model in self.objective.models().items():
            prefix = names[id(model)] + "."
            self._frames[name].load_state_dict(
                {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)},
                assign=True)
        save_models(self._frames, self.out, self.tokenizer)

    def save_checkpoint(self) -> None:
        """Write a checkpoint cooperatively from every rank (atomic: see train.resume)."""
        d = self.dist
        writer = CheckpointWriter(self.out, self.step, self.settings.keep, self.run_id,
                                  self._tag)
        early = None if self.early is None else [self.early.best, self.early.since_best]
        meta = {"step": self.step, "elapsed": self.elapsed, "data": self.data.state_dict(),
                "settings": self.settings.to_dict(), "recipe": self.recipe,
                "world_size": d.world_size, "history": self.history, "early_stopping": early}
        if self.sharded:
            if d.is_main:
                writer.prepare()
            d.barrier()
            optimizer = writer.write_sharded(self.objective, self.optimizer)  # collective
            if d.is_main:
                writer.write_meta({**meta, "sharded": True, "optimizer": optimizer})
        elif d.is_main:
            writer.begin(self.objective.models(), self.optimizer, meta)
        d.barrier()
        writer.write_rng(d.rank)
        d.barrier()
        if d.is_main:
            writer.commit()
        d.barrier()


def save_models(models: dict[str, nn.Module], out: Path, tokenizer: Path | None = None) -> None:
    """Each model in our layout (out/<name>), "model" also in the Hugging Face layout (out/hf),
    each with the tokenizer files, so unmask and transformers load them directly. Atomic per
    folder: written aside, then renamed into place (a kill leaves the old one or the new one)."""
    for name, model in models.items():
        model = materialised(model)
        targets = [(out / name, "unmask")] + ([(out / "hf", "hf")] if name == "model" else [])
        for target, fmt in targets:
            tmp, old = (target.with_name(f".{target.name}.{k}-{os.getpid()}")
                        for k in ("tmp", "old"))
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                save_model(model, tmp, format=fmt)
            except ValueError as err:  # a model the HF family cannot express
                print(f"note: not saved in the Hugging Face layout: {err}", file=sys.stderr)
                shutil.rmtree(tmp, ignore_errors=True)
                continue
            for file in TOKENIZER_FILES:
                if tokenizer is not None and (tokenizer / file).is_file():
                    shutil.copy(tokenizer / file, tmp / file)
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)


def resplit_cursor(cursor: dict, was: int, now: int) -> dict:
    """A data cursor saved by `was` processes, for `now` (same global batch): the per-process
    sizes it records (PER_PROCESS) scaled by was / now, its world_size replaced. A cursor that
    counts global batches (PackedBatches, TaskBatches) then points at the same next batch."""
    if was == now or "world_size" not in cursor:
        return cursor
    scaled = {k: cursor[k] * was // now for k in PER_PROCESS if k in cursor}
    return {**cursor, **scaled, "world_size": now}


def clip_gradients(parameters, max_norm: float) -> float:
    """clip_grad_norm_ that also takes FSDP2's sharded (DTensor) gradients: the total norm
    is reduced over the shards before scaling. Returns the norm before clipping."""
    from torch.distributed.tensor import DTensor

    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return float(norm)


def meta_frame(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters live on the meta device (no memory; buffers are
    copied): the frame that full weights gathered from a sharded run load into
    (load_state_dict(assign=True)) to be saved by the usual code. Tied weights stay tied."""
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


def materialised(model: nn.Module) -> nn.Module:
    """`model`, or when some of its weights are computed (torch.nn.utils.parametrize, e.g.
    DeBERTa-v3's gradient-disentangled embeddings) a copy holding their values as plain
    weights under their usual names, which every loader reads. Checkpoints keep the
    parametrization's own tensors (exact resume); saved models hold what the model computes."""
    from torch.nn.utils import parametrize

    if not any(parametrize.is_parametrized(m) for m in model.modules()):
        return model
    plain = copy.deepcopy(model)
    for module in [m for m in plain.modules() if parametrize.is_parametrized(m)]:
        for tensor in list(module.parametrizations):
            parametrize.remove_parametrizations(module, tensor, leave_parametrized=True)
    return plain


__all__ = ["TOKENIZER_FILES", "EarlyStopping", "Trainer", "TrainingDiverged", "check_run_dir",
           "save_models"]
