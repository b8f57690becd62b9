"""The pretraining recipe: build the model(s), corruption, packed data and the fixed validation
set, then hand them to the Trainer (which builds nothing).

    from unmask.train.pretrain import PretrainRecipe, pretrainer
    from unmask.train.settings import Settings
    trainer = pretrainer(PretrainRecipe(data="shards/", preset="mini"),
                         Settings(out="run/", steps=2000))
    result = trainer.run()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
import torch
from torch import nn

from unmask.checkpoints import load as load_model
from unmask.config import PRESETS, preset
from unmask.corruption import MLMCorruption
from unmask.data import PackedBatches, TokenShards
from unmask.heads import MaskedLM, ReplacedTokenDetector
from unmask.train import distributed
from unmask.train.loop import EarlyStopping, Trainer
from unmask.train.objectives import (
    EMBEDDING_SHARING,
    MASKINGS,
    OBJECTIVES,
    build_objective,
    eval_corruption,
    generator_config,
)
from unmask.train.optim import freeze
from unmask.train.report import unigram_entropy
from unmask.train.settings import Settings, about
from unmask.train.words import continuation_table

ARCHS = ("bert", "deberta-v3")


def arch_overrides(arch: str, seq_len: int) -> dict:
    """EncoderConfig fields that turn a preset into `arch` ("bert": none).

    "deberta-v3" (He et al. 2021): no absolute positions, disentangled attention
    (content-to-position and position-to-content), log-bucketed relative positions with a
    LayerNorm on the relative table and the blocks' own key / query projections, no segment
    table, LayerNorm eps 1e-7: the published v3 configs' values, except position_buckets =
    min(256, 2 * seq_len): every distance inside a training row keeps a bucket of its own (v3's
    256 at seq_len >= 128) and no table rows are left that no row could ever train.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch == "bert":
        return {}
    return {"position": "none", "relative_attention": ("c2p", "p2c"),
            "position_buckets": min(256, 2 * seq_len), "relative_norm": True,
            "share_att_key": True, "type_vocab_size": 0, "layer_norm_eps": 1e-7}


@dataclass
class PretrainRecipe:
    """What a pretraining run builds (saved with every checkpoint; a resume must match); each
    field's help is that of its `unmask pretrain` flag.

    data: a prepared shard directory (`unmask prepare`). init: the checkpoint (ours or Hugging
    Face) to continue pretraining from (domain adaptation) instead of a fresh `preset`; it
    keeps its own architecture (arch: see arch_overrides). DeBERTa-v3's recipe:
    arch="deberta-v3", objective="electra", embedding_sharing="gdes". A mask_rate of 0.30
    suits short budgets better than BERT's 0.15; seq_len is at most the model's positions.
    """

    data: str
    preset: str = about("model size of a fresh model", "mini", choices=tuple(PRESETS))
    init: str | None = about("continue pretraining this checkpoint (ours or HF)")
    arch: str = about("attention of a fresh model: bert (absolute positions) or deberta-v3 "
                      "(disentangled relative attention, no absolute positions)", "bert",
                      choices=ARCHS)
    objective: str = about("masked LM, ELECTRA replaced-token detection, or causal LM", "mlm",
                           choices=OBJECTIVES)
    embedding_sharing: str = about(
        "electra: the generator's and discriminator's embeddings are one table (es, ELECTRA), "
        "or the discriminator's are stop-gradient(the generator's) + a delta of its own (gdes, "
        "DeBERTa-v3: --arch deberta-v3 --objective electra --embedding-sharing gdes), or not "
        "shared (none)", "es", choices=EMBEDDING_SHARING)
    masking: str = about("what is masked together: tokens, whole words, or spans", "token",
                         choices=MASKINGS)
    mask_rate: float = about("share of tokens corrupted (default 0.30)", 0.30)
    dropout: float | None = about("dropout of the model (default: the preset's 0.1)")
    seq_len: int = about("tokens per packed row", 128)
    batch_size: int = about("rows per process per micro-batch", 32)
    eval_batches: int = about("validation batches per evaluation (0 = none)", 16)

    def __post_init__(self) -> None:
        if self.init is None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name, allowed in (("objective", OBJECTIVES), ("masking", MASKINGS),
                              ("arch", ARCHS), ("embedding_sharing", EMBEDDING_SHARING)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.init is not None and self.arch != "bert":
            raise ValueError(f"--arch {self.arch} builds a fresh model; --init {self.init} "
                             "keeps its own architecture: pass one of them")
        if self.embedding_sharing != "es" and self.objective != "electra":
            raise ValueError(f"--embedding-sharing {self.embedding_sharing} applies to "
                             f"--objective electra, not {self.objective}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must lie in (0, 1), got {self.mask_rate}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name, low in (("seq_len", 2), ("batch_size", 1), ("eval_batches", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")


def build(recipe: PretrainRecipe, shards: TokenShards, seed: int) -> nn.Module:
    """The objective around a fresh (or --init) model, checked against the data first."""
    r, vocab, data = recipe, shards.vocab_size, Path(recipe.data)
    drop = {} if r.dropout is None else {"hidden_dropout": r.dropout,
                                         "attention_dropout": r.dropout}
    task = "replaced_token_detection" if r.objective == "electra" else "masked_lm"
    if r.init is not None:
        model = load_model(r.init, task=task)
        if drop:
            _set_dropout(model, r.dropout)
        config, what = model.config, f"--init {r.init}"
        if config.vocab_size < vocab:
            raise ValueError(
                f"{what} has a vocabulary of {config.vocab_size} but the shards in {data} use "
                f"{vocab} ids: prepare them with that checkpoint's tokenizer (unmask prepare "
                "--tokenizer <checkpoint dir>)")
    else:
        config = preset(r.preset, vocab_size=vocab, **drop, **arch_overrides(r.arch, r.seq_len))
        what = f"preset {r.preset}"
    positions = config.max_position_embeddings - config.position_offset
    if r.seq_len > positions:  # checked before a position table of seq_len rows is built
        raise ValueError(f"seq_len {r.seq_len} exceeds the {positions} positions of {what}; "
                         f"use --seq-len {positions} or less")
    if r.init is None:
        model = (ReplacedTokenDetector if task != "masked_lm" else MaskedLM)(config)
    generator = MaskedLM(generator_config(config)) if r.objective == "electra" else None
    specials = shards.special_ids
    corruption = None
    if r.objective != "causal":
        if specials.get("mask") is None:
            raise ValueError(f"the tokenizer of {data} has no mask token; masked objectives "
                             "need one ([MASK] or <mask>)")
        corruption = MLMCorruption(
            mask_token_id=specials["mask"], vocab_size=vocab,
            special_ids=[i for i in specials.values() if i is not None],
            mask_rate=r.mask_rate, seed=seed)
    continues = None
    if r.masking != "token":
        tok_file = data / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"{r.masking} masking reads word boundaries from "
                                    f"{tok_file}, which is missing; use --masking token")
        continues = continuation_table(tokenizers.Tokenizer.from_file(str(tok_file))
                                       .get_vocab(with_added_tokens=True), vocab)
    objective = build_objective(r.objective, model, corruption, r.masking, continues,
                                generator, pad_id=shards.pad_id,
                                embedding_sharing=r.embedding_sharing)
    arch = "" if r.arch == "bert" else f" ({r.arch})"
    sharing = "" if r.objective != "electra" or r.embedding_sharing == "es" \
        else f" + {r.embedding_sharing}"
    objective.title = f"{r.objective}{sharing} · {r.init or r.preset}{arch}"
    return objective


class FixedEval:
    """Loss, accuracy and perplexity on a fixed validation set (the first eval_batches
    batches, corrupted by a fixed seed), summed over every rank; plus the unigram baseline
    (the loss of ignoring context) on the main rank."""

    def __init__(self, objective: nn.Module, train: TokenShards, val: TokenShards,
                 recipe: PretrainRecipe, seed: int, dist: distributed.Dist):
        self.objective, self.dist = objective, dist
        batches = PackedBatches(val, recipe.seq_len, recipe.batch_size, seed=seed,
                                rank=dist.rank, world_size=dist.world_size)
        corruption = getattr(objective, "corruption", None) or getattr(
            getattr(objective, "mlm", None), "corruption", None)
        fixed = eval_corruption(corruption) if corruption is not None else None
        steps = min(recipe.eval_batches, batches.steps_per_epoch)
        self.inputs = [objective.prepare(batches.batch(0, s), fixed)[0] for s in range(steps)]
        self.baseline = unigram_entropy(_counts(train), _counts(val)) if dist.is_main else None

    def __call__(self) -> dict | None:
        if not self.inputs:
            return None
        stats = torch.zeros(len(self.objective.stat_names), dtype=torch.float64)
        for inputs in self.inputs:
            inputs = {k: v.to(self.dist.device) for k, v in inputs.items()}
            stats += self.objective(**inputs)[1].cpu()
        stats = self.dist.all_reduce_sum(stats)
        metrics = self.objective.metrics(dict(zip(self.objective.stat_names, stats.tolist(),
                                                  strict=True)))
        return {**metrics, "unigram_baseline": self.baseline}


def _counts(shards: TokenShards) -> np.ndarray:
    c = np.zeros(shards.vocab_size, dtype=np.int64)
    for tokens in shards.shards:
        c += np.bincount(np.asarray(tokens[:20_000_000]), minlength=shards.vocab_size)[
            :shards.vocab_size]
    return c


def pretrainer(recipe: PretrainRecipe, settings: Settings,
               dist: distributed.Dist | None = None) -> Trainer:
    """A Trainer for this recipe (its .evaluator holds the validation set and baseline).

    With settings.patience, early stopping watches the validation loss and keeps the best.
    settings.freeze_embeddings / freeze_layers / layer_decay need recipe.init (continued
    pretraining): they freeze or slow down what a checkpoint already learned. Freezing
    applies to the saved model (ELECTRA: the discriminator; the fresh generator trains, except
    for the embeddings it shares under embedding_sharing "es", which are one table).
    """
    tuned = [flag for flag, on in (("--freeze-embeddings", settings.freeze_embeddings),
                                   ("--freeze-layers", settings.freeze_layers),
                                   ("--layer-decay", settings.layer_decay is not None)) if on]
    if tuned and recipe.init is None:
        raise ValueError(f"{' / '.join(tuned)} keep(s) what a pretrained checkpoint learned: "
                         "pass --init CHECKPOINT, or drop them for a fresh model")
    d = dist or distributed.setup(settings.device)
    data = Path(recipe.data)
    shards = TokenShards(data, "train")
    torch.manual_seed(settings.seed)  # same initial weights on every rank
    objective = build(recipe, shards, settings.seed)
    freeze(objective.models()["model"], settings.freeze_embeddings, settings.freeze_layers)
    batches = PackedBatches(shards, recipe.seq_len, recipe.batch_size, seed=settings.seed,
                            rank=d.rank, world_size=d.world_size)
    evaluator = None
    if recipe.eval_batches and "validation" in TokenShards.splits(data):
        evaluator = FixedEval(objective, shards, TokenShards(data, "validation"), recipe,
                              settings.seed, d)
    early = EarlyStopping("loss", higher_is_better=False, patience=settings.patience) \
        if settings.patience else None
    return Trainer(objective, batches, settings, evaluate=evaluator, early_stopping=early,
                   tokenizer=data, recipe=dataclasses.asdict(recipe), dist=d)


def _set_dropout(model: nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
    model.config.hidden_dropout = model.config.attention_dropout = p


__all__ = ["ARCHS", "FixedEval", "PretrainRecipe", "arch_overrides", "build", "pretrainer"]
