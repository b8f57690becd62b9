"""The run settings of every training command (pretraining and fine-tuning alike).

    settings = Settings(out="run/", steps=2000, lr=5e-4)        # pretraining's defaults
    settings = Settings.finetuning(out="out/sst2", epochs=3)    # BERT's fine-tuning recipe

One dataclass, one name per setting from the command line (`add_arguments` makes the flags from
the fields, help strings included) to the loop. Every number is checked against its meaning
here, once, so `--clip -1` or `--warmup -1` stop with one line instead of training wrongly.
What a recipe builds (model size, masking, task) is not here: the recipes own that.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field, fields

from unmask.train.optim import SCHEDULES

DTYPES = ("auto", "bf16", "fp32")
# Settings that may change when resuming (how long, how often, where); all others must match.
RESUMABLE = {"out", "steps", "minutes", "epochs", "eval_every", "save_every", "log_every",
             "keep", "compile", "progress", "resume", "overwrite", "patience", "device"}


def about(text: str, default=None, **extra):
    """A dataclass field whose help (and choices, in extra) make its command-line flag."""
    return field(default=default, metadata={"help": text, **extra})


@dataclass
class Settings:
    """How long and how to train; see each field's help (`unmask pretrain --help`)."""

    out: str = about("run folder: checkpoints, metrics.jsonl, loss.png, model/, hf/",
                     "runs/train")
    steps: int | None = about("stop after N optimizer steps")
    minutes: float | None = about("stop after M minutes of training (the schedule decays "
                                  "over the budget when it is the only limit)")
    epochs: float | None = about("stop after N passes over the training data")
    lr: float = about("peak learning rate", 1e-3)
    schedule: str = about("learning-rate schedule after the warmup", "linear",
                          choices=SCHEDULES)
    warmup: float = about("warmup: optimizer steps, or a fraction of the run when < 1", 0.06)
    weight_decay: float = about("AdamW weight decay (never on biases and norms)", 0.01)
    betas: tuple[float, float] = about("AdamW betas", (0.9, 0.98))
    eps: float = about("AdamW epsilon", 1e-6)
    clip: float = about("max gradient norm (0 = no clipping)", 1.0)
    layer_decay: float | None = about(
        "layer-wise learning-rate decay D in (0, 1] (ELECTRA / DeBERTa fine-tuning): the "
        "head gets lr, layer i of L (1 = bottom) lr*D^(L+1-i), the embeddings lr*D^(L+1); a "
        "block shared by several layers (ALBERT) gets its highest layer's rate (default: off)")
    freeze_embeddings: bool = about("do not train the embeddings (token, position, type "
                                    "tables and their norm)", False)
    freeze_layers: int = about("do not train the lowest N layers (layer 1 upwards; the top "
                               "layers always train)", 0)
    accumulate: int = about("micro-batches per optimizer step (gradient accumulation)", 1)
    dtype: str = about("bf16 autocast, fp32, or auto (bf16 on GPUs and on CPUs with native "
                       "bf16 matmuls)", "auto", choices=DTYPES)
    compile: bool = about("torch.compile the model", False)
    shard: bool = about("shard weights, gradients and AdamW state over the torchrun processes "
                        "(FSDP2) instead of copying the model to each (DDP): for models too "
                        "big for one device; its checkpoints resume with any number of "
                        "processes (keep the global batch: see the README)", False)
    device: str = about("auto, cpu, cuda or cuda:N", "auto")
    seed: int = about("seed of initialisation, data order, corruption and dropout", 0)
    eval_every: int = about("evaluate every N optimizer steps (0 = once per epoch); always "
                            "at the end", 200)
    save_every: int = about("write a resumable checkpoint every N steps (0 = never)", 500)
    keep: int = about("checkpoints kept", 2)
    patience: int = about("early stopping: stop after N evaluations without improvement of "
                          "the dev metric, keeping the best model (0 = never stop early)", 0)
    log_every: int = about("log training metrics every N steps", 10)
    progress: bool = about("show a progress bar", True)
    resume: bool = about("continue the run in --out from its newest intact checkpoint", False)
    overwrite: bool = about("delete the run already in --out and start over", False)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.steps is None and self.minutes is None and self.epochs is None:
            raise ValueError("give the run a length: --steps N, --minutes M and/or --epochs E")
        if self.resume and self.overwrite:
            raise ValueError("pass --resume (continue the run in --out) or --overwrite (start "
                             "it over), not both")
        for name in ("schedule", "dtype"):
            allowed = fields_by_name()[name].metadata["choices"]
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        checks = {  # name: (holds, what it must be)
            "steps": (lambda v: v is None or v >= 1, ">= 1"),
            "minutes": (lambda v: v is None or v > 0, "> 0"),
            "epochs": (lambda v: v is None or v > 0, "> 0"),
            "lr": (lambda v: v > 0, "> 0"),
            "warmup": (lambda v: v >= 0 and (v < 1 or float(v).is_integer()),
                       ">= 0: a whole number of steps, or a fraction < 1"),
            "weight_decay": (lambda v: v >= 0, ">= 0"),
            "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
                      "two numbers in [0, 1)"),
            "eps": (lambda v: v > 0, "> 0"),
            "clip": (lambda v: v >= 0, "> 0 (the max gradient norm) or 0 (no clipping)"),
            "layer_decay": (lambda v: v is None or 0 < v <= 1, "in (0, 1] (1 = no decay)"),
            "freeze_layers": (lambda v: v >= 0, ">= 0 (0 = train every layer)"),
            "accumulate": (lambda v: v >= 1, ">= 1"),
            "eval_every": (lambda v: v >= 0, ">= 0 (0 = once per epoch)"),
            "save_every": (lambda v: v >= 0, ">= 0 (0 = never)"),
            "keep": (lambda v: v >= 1, ">= 1"),
            "patience": (lambda v: v >= 0, ">= 0 (0 = never stop early)"),
            "log_every": (lambda v: v >= 1, ">= 1"),
            "seed": (lambda v: v >= 0, ">= 0"),
        }
        for name, (holds, meaning) in checks.items():
            value = getattr(self, name)
            numbers = value if isinstance(value, tuple) else (value,)
            if any(v is not None and not math.isfinite(v) for v in numbers) or not holds(value):
                raise ValueError(f"{name} must be {meaning}, got {value!r}")

    @classmethod
    def finetuning(cls, **overrides) -> Settings:
        """BERT's fine-tuning recipe (Devlin et al., appendix A) with the transformers
        Trainer's AdamW betas / eps, evaluated every epoch, early stopping after 2."""
        return cls(**{**FINETUNING, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FINETUNING = {"lr": 5e-5, "epochs": 3.0, "warmup": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
              "eval_every": 0, "patience": 2}


def fields_by_name() -> dict:
    return {f.name: f for f in fields(Settings)}


def add_arguments(parser: argparse.ArgumentParser, **defaults) -> None:
    """The run flags (--steps, --lr, --dtype, ...) from the fields, with help strings.

    defaults: per-command defaults (a recipe's lr, epochs, ...); out=None makes --out required.
    """
    group = parser.add_argument_group("run")
    for f in fields(Settings):
        default = defaults.get(f.name, f.default)
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"]
        if f.name == "progress":
            group.add_argument("--no-progress", dest="progress", action="store_false",
                               default=default, help="no progress bar")
        elif f.type == "bool":
            group.add_argument(flag, action="store_true", default=default, help=text)
        elif f.name == "betas":
            group.add_argument(flag, type=float, nargs=2, default=default, metavar=("B1", "B2"),
                               help=f"{text} (default {default[0]} {default[1]})")
        else:
            kind = {"int | None": int, "int": int, "str": str}.get(f.type, float)
            group.add_argument(flag, type=kind, default=default, choices=f.metadata.get(
                "choices"), required=f.name == "out" and default is None,
                help=text + ("" if default is None else f" (default {default})"))


def from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags (add_arguments)."""
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})


__all__ = ["DTYPES", "FINETUNING", "RESUMABLE", "Settings", "about", "add_arguments",
           "from_args"]
