"""One training loop for pretraining, alone or under torchrun.

    from unmask.train.loop import TrainConfig, Trainer
    Trainer(TrainConfig(data="shards/", out="run/", preset="mini", steps=2000)).run()

A step: take `accumulate` packed micro-batches for this rank, prepare them on the CPU
(corruption, segment layout: unmask.train.objectives), count the loss denominators over the
whole global batch (one all-reduce), run forward/backward under bf16 autocast when asked,
clip, set the learning rate, step AdamW. Gradients are synchronised only on the last
micro-batch. Because every loss term is divided by its global denominator, a run on W ranks
x B rows computes the same update as one process with W*B rows.

Every `save_every` steps a checkpoint holds the model(s), optimizer, learning-rate step, RNG
states of every rank and the data cursor (unmask.train.checkpoint); `resume=True` continues
from the newest one and reproduces the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
import torch
from torch import nn

from unmask.checkpoints import load as load_model
from unmask.checkpoints import save as save_model
from unmask.config import PRESETS, preset
from unmask.corruption import MLMCorruption
from unmask.data import PackedBatches, TokenShards
from unmask.heads import MaskedLM, ReplacedTokenDetector
from unmask.train import distributed
from unmask.train.allocator import keep_freed_memory
from unmask.train.checkpoint import CheckpointWriter, latest_checkpoint, load_checkpoint
from unmask.train.metrics import MetricsLog, Progress, save_loss_curve, unigram_entropy
from unmask.train.objectives import (
    MASKINGS,
    OBJECTIVES,
    build_objective,
    eval_corruption,
    generator_config,
)
from unmask.train.optim import SCHEDULES, adamw, lr_factor
from unmask.train.words import continuation_table

DTYPES = ("auto", "bf16", "fp32")
# Settings that may change when resuming (how long, how often, where); all others must match.
_RESUMABLE = {"out", "steps", "minutes", "eval_every", "eval_batches", "save_every",
              "log_every", "keep", "compile", "progress"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json", "merges.txt")


@dataclass
class TrainConfig:
    """Everything that defines a pretraining run (saved with every checkpoint).

    data: a prepared shard directory (`unmask prepare`). out: the run directory.
    preset / init: a fresh model of a named size ("tiny", "mini", "small", "base"), or the
        checkpoint (ours or Hugging Face) to continue pretraining from (domain adaptation).
    objective: "mlm", "electra" or "causal". masking: "token", "whole_word" or "span".
    mask_rate: share of tokens corrupted (0.30 suits short budgets better than BERT's 0.15).
    seq_len, batch_size (rows per rank per micro-batch), accumulate (micro-batches per step).
    steps and/or minutes: stop after so many optimizer steps or so much wall time; with
        minutes only, the schedule decays over the time budget.
    lr, schedule (constant, linear, cosine, wsd), warmup (steps, or a fraction of the run
        when < 1), weight_decay (never on biases and norms), clip (max gradient norm).
    dtype: "bf16" (autocast), "fp32", or "auto" (bf16 on GPUs and on CPUs with native bf16
        matmuls, AVX512-BF16 or AMX, where it runs 2-3x faster; fp32 on other CPUs, which
        only emulate bf16).
    dropout: override the model's dropout (None = the preset's 0.1).
    eval_every / eval_batches: validation cadence and size. save_every: checkpoint cadence
        (make it a multiple of log_every for exactly resumable logs). keep: checkpoints kept.
    """

    data: str
    out: str
    preset: str = "mini"
    init: str | None = None
    objective: str = "mlm"
    masking: str = "token"
    mask_rate: float = 0.30
    seq_len: int = 128
    batch_size: int = 32
    accumulate: int = 1
    steps: int | None = None
    minutes: float | None = None
    lr: float = 1e-3
    schedule: str = "linear"
    warmup: float = 0.06
    weight_decay: float = 0.01
    clip: float = 1.0
    dtype: str = "auto"
    compile: bool = False
    dropout: float | None = None
    eval_every: int = 200
    eval_batches: int = 16
    save_every: int = 500
    log_every: int = 10
    keep: int = 2
    seed: int = 0
    device: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("give the run a length: --steps N and/or --minutes M")
        if self.init is None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name, allowed in (("objective", OBJECTIVES), ("masking", MASKINGS),
                              ("schedule", SCHEDULES), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must lie in (0, 1), got {self.mask_rate}")
        for name in ("seq_len", "batch_size", "accumulate", "eval_every", "save_every",
                     "log_every", "keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Trainer:
    """Builds the model, data, objective and optimizer from a TrainConfig, then trains.

    resume: continue from the newest checkpoint in config.out (its settings must match,
    except how long and how often: see _RESUMABLE). dist: an unmask.train.distributed.Dist
    (default: read from the torchrun environment).
    """

    def __init__(self, config: TrainConfig, resume: bool = False,
                 dist: distributed.Dist | None = None):
        self.config = cfg = config
        self.dist = d = dist or distributed.setup(cfg.device)
        if d.device.type == "cpu":
            keep_freed_memory()  # fewer page faults per step (unmask.train.allocator)
        self.out = Path(cfg.out)
        data = Path(cfg.data)
        self.shards = TokenShards(data, "train")
        self.val = TokenShards(data, "validation") if "validation" in TokenShards.splits(data) \
            else None
        self.use_bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and (
            d.device.type == "cuda" or cpu_has_bf16()))

        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.objective = self._build_objective(data).to(d.device)
        self.optimizer = adamw(self.objective, cfg.lr, cfg.weight_decay)
        self.data = PackedBatches(self.shards, cfg.seq_len, cfg.batch_size, seed=cfg.seed,
                                  rank=d.rank, world_size=d.world_size)
        self.step, self._elapsed_before, self._session_start = 0, 0.0, None
        checkpoint = None
        if resume:
            checkpoint = latest_checkpoint(self.out)
            if checkpoint is None:
                raise FileNotFoundError(
                    f"{self.out} has no checkpoint to resume from (checkpoints/latest is missing "
                    "or incomplete); start without --resume, or point --out at an earlier run"
                )
            meta = load_checkpoint(checkpoint, self.objective.models(), self.optimizer, d.rank)
            self._check_resumable(meta["config"])
            self.step, self._elapsed_before = meta["step"], meta["elapsed"]
            self.data.load_state_dict(meta["data"])
        else:
            torch.manual_seed(cfg.seed + 1 + d.rank)  # dropout differs per rank, fixed by seed
        self.iterator = iter(self.data)
        self.module: nn.Module = self.objective
        if d.enabled:
            self.module = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
        if cfg.compile:
            self.module = torch.compile(self.module, dynamic=True)
        self.weights = torch.tensor(self.objective.weights, dtype=torch.float32,
                                    device=d.device)
        self.eval_inputs = self._eval_inputs()
        self.baseline = self._unigram_baseline() if d.is_main else None
        self.log = MetricsLog(self.out / "metrics.jsonl",
                              self.step if checkpoint is not None else None) \
            if d.is_main else None

    # --- building ------------------------------------------------------------------------
    def _build_objective(self, data: Path) -> nn.Module:
        cfg, vocab = self.config, self.shards.vocab_size
        drop = {} if cfg.dropout is None else {"hidden_dropout": cfg.dropout,
                                               "attention_dropout": cfg.dropout}
        task = "replaced_token_detection" if cfg.objective == "electra" else "masked_lm"
        if cfg.init is not None:
            model = load_model(cfg.init, task=task)
            if drop:
                model = _with_dropout(model, cfg.dropout)
            if model.config.vocab_size < vocab:
                raise ValueError(
                    f"--init {cfg.init} has a vocabulary of {model.config.vocab_size} but the "
                    f"shards in {data} use {vocab} ids: prepare them with that checkpoint's "
                    "tokenizer (unmask prepare --tokenizer <checkpoint dir>)"
                )
        else:
            config = preset(cfg.preset, vocab_size=vocab,
                            max_position_embeddings=max(512, cfg.seq_len), **drop)
            model = (ReplacedTokenDetector if task != "masked_lm" else MaskedLM)(config)
        if model.config.max_position_embeddings - model.config.position_offset < cfg.seq_len:
            raise ValueError(f"seq_len {cfg.seq_len} exceeds what the model's positions allow")
        generator = MaskedLM(generator_config(model.config)) if cfg.objective == "electra" \
            else None
        specials = self.shards.special_ids
        corruption = None
        if cfg.objective != "causal":
            if specials.get("mask") is None:
                raise ValueError(f"the tokenizer of {data} has no mask token; masked objectives "
                                 "need one ([MASK] or <mask>)")
            corruption = MLMCorruption(
                mask_token_id=specials["mask"], vocab_size=vocab,
                special_ids=[i for i in specials.values() if i is not None],
                probability=cfg.mask_rate, seed=cfg.seed)
        continues = None
        if cfg.masking != "token":
            tok_file = data / "tokenizer.json"
            if not tok_file.is_file():
                raise FileNotFoundError(f"{cfg.masking} masking reads word boundaries from "
                                        f"{tok_file}, which is missing; use --masking token")
            continues = continuation_table(tokenizers.Tokenizer.from_file(str(tok_file))
                                           .get_vocab(with_added_tokens=True), vocab)
        return build_objective(cfg.objective, model, corruption, cfg.masking, continues,
                               generator, pad_id=self.shards.pad_id)

    def _check_resumable(self, saved: dict) -> None:
        mine = self.config.to_dict()
        diff = {k: (saved.get(k), v) for k, v in mine.items()
                if k not in _RESUMABLE and saved.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume {self.out}: settings differ from the checkpoint "
                             f"({detail}); resume with the same settings")

    def _eval_inputs(self) -> list[dict]:
        """The fixed validation set: the first eval_batches batches, corrupted by a fixed seed."""
        if self.val is None:
            return []
        cfg = self.config
        val = PackedBatches(self.val, cfg.seq_len, cfg.batch_size, seed=cfg.seed,
                            rank=self.dist.rank, world_size=self.dist.world_size)
        corruption = getattr(self.objective, "corruption", None) or getattr(
            getattr(self.objective, "mlm", None), "corruption", None)
        fixed = eval_corruption(corruption) if corruption is not None else None
        steps = min(cfg.eval_batches, val.steps_per_epoch)
        return [self.objective.prepare(val.batch(0, s), fixed)[0] for s in range(steps)]

    def _unigram_baseline(self) -> float | None:
        if self.val is None:
            return None
        v = self.shards.vocab_size

        def counts(shards: TokenShards) -> np.ndarray:
            c = np.zeros(v, dtype=np.int64)
            for tokens in shards.shards:
                c += np.bincount(np.asarray(tokens[:20_000_000]), minlength=v)[:v]
            return c

        return unigram_entropy(counts(self.shards), counts(self.val))

    # --- training ------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _to_device(self, inputs: dict) -> dict:
        return {k: v.to(self.dist.device, non_blocking=True) for k, v in inputs.items()}

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, over every session of this run (kept across resumes)."""
        running = 0.0 if self._session_start is None else time.perf_counter() - self._session_start
        return self._elapsed_before + running

    def total_steps(self) -> int | None:
        """The schedule's length: steps, or (time budget only) projected from the pace so far."""
        cfg = self.config
        if cfg.steps is not None:
            return cfg.steps
        if self.step == 0 or self.elapsed == 0:
            return None
        return max(self.step + 1, round(self.step * cfg.minutes * 60 / self.elapsed))

    def learning_rate(self) -> float:
        cfg = self.config
        total = self.total_steps()
        if total is None:
            total = 10**9
        warmup = round(cfg.warmup * total) if cfg.warmup < 1 else int(cfg.warmup)
        if cfg.steps is None and cfg.warmup < 1:
            warmup = min(warmup, 100)  # projected totals start huge: bound the warmup
        return cfg.lr * lr_factor(self.step, cfg.schedule, warmup, total)

    def train_step(self) -> dict:
        """One optimizer step over the global batch; returns its global stats and tokens."""
        d, cfg = self.dist, self.config
        micro = []
        for _ in range(cfg.accumulate):
            batch = next(self.iterator)
            inputs, counts = self.objective.prepare(batch)
            tokens = batch["attention_mask"].sum().double()[None]
            micro.append((inputs, torch.cat([counts, tokens])))
        totals = d.all_reduce_sum(sum(c for _, c in micro))
        denominators = totals[:-1].clamp(min=1).to(d.device, torch.float32)
        stats = None
        self.objective.train()
        for i, (inputs, _) in enumerate(micro):
            sync = i == len(micro) - 1 or not d.enabled
            context = contextlib.nullcontext() if sync else self.module.no_sync()
            with context:
                with self._autocast():
                    terms, s = self.module(**self._to_device(inputs))
                # DDP averages gradients over ranks: scale by world size to get the sum.
                loss = (terms.float() * self.weights / denominators).sum() * d.world_size
                loss.backward()
            stats = s.detach().cpu() if stats is None else stats + s.detach().cpu()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.objective.parameters(), cfg.clip)
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        stats = d.all_reduce_sum(stats)
        return {"stats": stats, "tokens": float(totals[-1]), "lr": lr,
                "grad_norm": float(grad_norm)}

    @torch.no_grad()
    def evaluate(self) -> dict | None:
        """Loss, accuracy and perplexity on the fixed validation set (all ranks together)."""
        if not self.eval_inputs:
            return None
        self.objective.eval()
        stats = torch.zeros(len(self.objective.stat_names), dtype=torch.float64)
        for inputs in self.eval_inputs:
            with self._autocast():
                _, s = self.objective(**self._to_device(inputs))
            stats += s.cpu()
        self.objective.train()
        stats = self.dist.all_reduce_sum(stats)
        return self.objective.metrics(dict(zip(self.objective.stat_names, stats.tolist(),
                                               strict=True)))

    def _should_stop(self) -> bool:
        cfg = self.config
        stop = cfg.steps is not None and self.step >= cfg.steps
        if cfg.minutes is not None and not stop:
            over = self.elapsed >= cfg.minutes * 60
            flag = self.dist.all_reduce_sum(torch.tensor([float(over)]))  # ranks agree
            stop = bool(flag.item() > 0)
        return stop

    def run(self, stop_at: int | None = None) -> dict:
        """Train until the configured length (or `stop_at` steps, as if killed right after
        the checkpoint there); returns the last train and eval metrics."""
        cfg, d = self.config, self.dist
        if d.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
        progress = Progress(cfg.steps, cfg.progress and d.is_main, cfg.minutes)
        self._session_start = window_start = time.perf_counter()
        window_tokens, window = 0.0, None
        last_train, last_eval = {}, None
        try:
            while not self._should_stop():
                out = self.train_step()
                window = out["stats"] if window is None else window + out["stats"]
                window_tokens += out["tokens"]
                if self.step % cfg.log_every == 0:
                    now = time.perf_counter()
                    last_train = self._record(window, out, window_tokens / (now - window_start))
                    progress.update(self.step, last_train["loss"], last_train["tokens_per_s"],
                                    self.total_steps())
                    window_start, window_tokens, window = now, 0.0, None
                done = self._should_stop() or self.step == stop_at
                if self.step % cfg.eval_every == 0 or done:
                    last_eval = self._eval_and_log()
                if self.step % cfg.save_every == 0 or done:
                    self.save_checkpoint()
                if self.step == stop_at:
                    return {"train": last_train, "eval": last_eval, "step": self.step}
        finally:
            progress.close()
        if d.is_main:
            self.save_models()
            self._curve()
        return {"train": last_train, "eval": last_eval, "step": self.step,
                "baseline": self.baseline}

    def _record(self, window: torch.Tensor, out: dict, tokens_per_s: float) -> dict:
        names = self.objective.stat_names
        metrics = self.objective.metrics(dict(zip(names, window.tolist(), strict=True)))
        record = {"kind": "train", "step": self.step, **metrics, "lr": out["lr"],
                  "grad_norm": out["grad_norm"], "tokens_per_s": tokens_per_s}
        if self.log is not None:
            self.log.write(record)
        return record

    def _eval_and_log(self) -> dict | None:
        metrics = self.evaluate()
        if metrics is not None and self.log is not None:
            self.log.write({"kind": "eval", "step": self.step, **metrics,
                            "unigram_baseline": self.baseline})
            self._curve()
        return metrics

    def _curve(self) -> None:
        if self.log is not None:
            save_loss_curve(self.log.records(), self.out / "loss.png",
                            f"{self.config.objective} · {self.config.preset}", self.baseline)

    # --- saving --------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write a checkpoint cooperatively from every rank (atomic: see train.checkpoint)."""
        d = self.dist
        writer = CheckpointWriter(self.out, self.step, self.config.keep)
        if d.is_main:
            writer.begin(self.objective.models(), self.optimizer,
                         {"step": self.step, "elapsed": self.elapsed,
                          "data": self.data.state_dict(), "config": self.config.to_dict(),
                          "world_size": d.world_size})
        d.barrier()
        writer.write_rng(d.rank)
        d.barrier()
        if d.is_main:
            writer.commit()
        d.barrier()

    def save_models(self) -> None:
        """The trained model(s) in our format (out/model) and the Hugging Face layout (out/hf),
        each with the tokenizer, so both unmask and transformers load them directly."""
        for name, model in self.objective.models().items():
            targets = {"unmask": self.out / name}
            if name == "model":
                targets["hf"] = self.out / "hf"
            for fmt, target in targets.items():
                try:
                    save_model(model, target, format=fmt)
                except ValueError as err:  # a model the HF family cannot express
                    print(f"note: not saved in the Hugging Face layout: {err}")
                    continue
                for file in _TOKENIZER_FILES:
                    if (Path(self.config.data) / file).is_file():
                        shutil.copy(Path(self.config.data) / file, target / file)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (Linux: /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _with_dropout(model: nn.Module, p: float) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
    model.config.hidden_dropout = model.config.attention_dropout = p
    return model


__all__ = ["DTYPES", "TrainConfig", "Trainer"]
