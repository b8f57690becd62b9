"""Pretraining objectives: masked LM (token / whole-word / span), ELECTRA (with DeBERTa-v3's
gradient-disentangled embedding sharing), causal LM.

Axes: B packed rows, L their length, S segments (one document piece each), M the longest
segment, N positions with a loss, V vocabulary, H hidden size.

Each objective follows the contract in unmask.train.loop's docstring: prepare(batch) is the
CPU work on a packed batch from PackedBatches (corrupt reproducibly, keyed by sample id, never
across a document boundary; cut the rows into segments, unmask.train.layout) and returns the
forward inputs with the denominators of its loss terms; forward(...) is the model work and
returns the terms' loss sums and the stats for metrics.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from unmask import masks
from unmask.config import EncoderConfig
from unmask.corruption import MLMCorruption
from unmask.heads import IGNORE_INDEX, MaskedLM, ReplacedTokenDetector
from unmask.train.cross_entropy import linear_cross_entropy, sum_cross_entropy
from unmask.train.layout import to_segments
from unmask.train.words import word_ids

OBJECTIVES = ("mlm", "electra", "causal")
MASKINGS = ("token", "whole_word", "span")
# How ELECTRA's generator and discriminator share embeddings (DeBERTaV3's names): "es" one
# table trained by both losses (ELECTRA), "gdes" gradient-disentangled (DeBERTa-v3),
# "none" each its own.
EMBEDDING_SHARING = ("es", "gdes", "none")
ELECTRA_DISCRIMINATOR_WEIGHT = 50.0
AUC_BINS = 100  # histogram bins of the discriminator's probabilities (a summable AUC)


def _decode_labelled(model: MaskedLM, input_ids, attention_mask, position_ids, labels,
                     mask=None, keep_logits: bool = False):
    """Encoder on segments, decoder on the labelled rows only (the decoder is the biggest
    matmul, H x V per row: skipping unlabelled rows skips most of it).

    input_ids, labels: int64 (S, M); mask: optional extra attention mask (causal).
    keep_logits: also return the logits (ELECTRA samples from them); otherwise decoder and
    loss run fused (unmask.train.cross_entropy.linear_cross_entropy) and logits is None.
    Returns (ce_sum float32 scalar, stats float64 (3,) [ce_sum, n, correct], logits (N, V)).
    """
    hidden = model.encoder(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           mask=mask, backend="unpadded").last_hidden_state  # (S, M, H)
    flat = labels.reshape(-1)
    rows = (flat != IGNORE_INDEX).nonzero().squeeze(1)  # (N,)
    picked, targets = hidden.reshape(-1, hidden.shape[-1])[rows], flat[rows]  # (N, H), (N,)
    head, words = model.head, model.encoder.embeddings.word.weight
    logits = None
    if keep_logits:
        logits = head(picked, words)  # (N, V)
        ce, correct = sum_cross_entropy(logits, targets)
    else:
        ce, correct = linear_cross_entropy(head.transform(picked), head.decoder_weight(words),
                                           head.bias, targets)
    n = torch.tensor(float(len(rows)), dtype=torch.float64, device=ce.device)
    return ce, torch.stack([ce.detach().double(), n, correct.double()]), logits


class MaskedLMObjective(nn.Module):
    """BERT's objective: corrupt `rate` of the tokens 80/10/10, predict the originals.

    model: MaskedLM. corruption: MLMCorruption (its probability is the masking rate).
    masking: "token" (BERT), "whole_word" (all pieces of a word together) or "span"
    (SpanBERT). continues: bool (V,) word-continuation table (unmask.train.words) for
    whole_word and span. pad_id: the padding id of the segment layout.
    """

    stat_names = ("mlm_sum", "masked", "correct")
    weights = (1.0,)
    causal = False  # CausalLMObjective: each position attends to itself and those before

    def __init__(self, model: MaskedLM, corruption: MLMCorruption, masking: str = "token",
                 continues: np.ndarray | None = None, pad_id: int = 0):
        super().__init__()
        if masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {masking!r}")
        if masking != "token" and continues is None:
            raise ValueError(f"{masking} masking needs the word-continuation table")
        self.model, self.corruption, self.masking, self.continues, self.pad_id = (
            model, corruption, masking, continues, pad_id)

    def corrupt(self, batch: dict, corruption: MLMCorruption | None = None):
        """Packed batch -> (corrupted ids, labels), int64 (B, L); nothing crosses documents.

        corruption: use this one instead of the objective's (a fixed validation set)."""
        c, ids = corruption or self.corruption, batch["input_ids"]
        common = {"special_tokens_mask": batch["special_tokens_mask"],
                  "sample_ids": batch["sample_ids"]}
        if self.masking == "token":
            return c(ids, batch["attention_mask"], **common)
        words = word_ids(ids, batch["special_tokens_mask"], self.continues)
        if self.masking == "whole_word":
            return c.whole_word(ids, words, batch["attention_mask"],
                                document_ids=batch["document_ids"], **common)
        return c.spans(ids, words, batch["document_ids"], batch["attention_mask"], **common)

    def prepare(self, batch: dict, corruption: MLMCorruption | None = None):
        """Packed batch -> (forward inputs in segment layout, counts float64 (1,))."""
        corrupted, labels = self.corrupt(batch, corruption)
        seg = to_segments({"input_ids": corrupted, "labels": labels}, batch["attention_mask"],
                          batch["position_ids"],
                          {"input_ids": self.pad_id, "labels": IGNORE_INDEX})
        counts = torch.tensor([float((labels != IGNORE_INDEX).sum())], dtype=torch.float64)
        return seg, counts

    def forward(self, input_ids, attention_mask, position_ids, labels):
        mask = masks.causal(input_ids.shape[1], device=input_ids.device) if self.causal else None
        ce, stats, _ = _decode_labelled(self.model, input_ids, attention_mask, position_ids,
                                        labels, mask)
        return ce[None], stats

    @staticmethod
    def metrics(stats: dict[str, float]) -> dict[str, float]:
        """Summed stats -> loss, accuracy on masked tokens, perplexity."""
        n = max(stats["masked"], 1.0)
        loss = stats["mlm_sum"] / n
        return {"loss": loss, "mlm_loss": loss, "accuracy": stats["correct"] / n,
                "perplexity": math.exp(min(loss, 50.0))}

    def models(self) -> dict[str, nn.Module]:
        """What to save: name -> model ("model" is the one users continue from)."""
        return {"model": self.model}


class CausalLMObjective(MaskedLMObjective):
    """Next-token prediction with the same encoder under a causal mask (for comparison).

    Each segment is its own sequence: position i sees positions <= i of its document and
    predicts token i + 1; nothing is corrupted.
    """

    causal = True

    def __init__(self, model: MaskedLM, pad_id: int = 0):
        nn.Module.__init__(self)
        self.model, self.pad_id = model, pad_id

    def prepare(self, batch: dict, corruption: MLMCorruption | None = None):
        ids = batch["input_ids"]
        seg = to_segments({"input_ids": ids}, batch["attention_mask"], batch["position_ids"],
                          {"input_ids": self.pad_id})
        labels = torch.full_like(seg["input_ids"], IGNORE_INDEX)
        follows = seg["attention_mask"][:, 1:]
        labels[:, :-1] = torch.where(follows, seg["input_ids"][:, 1:], IGNORE_INDEX)
        seg["labels"] = labels
        return seg, torch.tensor([float(follows.sum())], dtype=torch.float64)


def generator_config(config: EncoderConfig, divisor: int = 4) -> EncoderConfig:
    """ELECTRA's generator: the discriminator's depth, 1/divisor of its width, embeddings
    shared at the discriminator's width (embedding_size), projected down."""
    heads = max(1, config.num_heads // divisor)
    hidden = max(heads, config.hidden_size // divisor // heads * heads)
    return config.replace(hidden_size=hidden, num_heads=heads,
                          intermediate_size=max(1, config.intermediate_size // divisor),
                          embedding_size=config.embed_dim)


class GradientDisentangled(nn.Module):
    """DeBERTa-v3's gradient-disentangled embedding sharing (He et al. 2021, DeBERTaV3), as a
    torch.nn.utils.parametrize parametrization of the discriminator's table:

        E_D = sg(E_G) + E_delta

    forward(delta (V, E)) -> E_D (V, E). The generator's table E_G enters without gradient, so
    the discriminator's loss trains only E_delta (registered as the parametrization's
    `original`, starting at zero) and the generator's MLM loss alone trains E_G: the two
    losses no longer pull the shared table apart (the tug-of-war of ELECTRA's sharing).
    The source table is held outside the module tree (the generator owns and saves it).
    """

    def __init__(self, source: nn.Parameter):
        super().__init__()
        self._source = (source,)  # a tuple: not a submodule or parameter of the discriminator

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        return self._source[0].detach() + delta


def share_gradient_disentangled(source: nn.Module, target: nn.Module, name: str = "weight"):
    """Parametrize target.<name> as GradientDisentangled(source.<name>) with a zero delta.

    source, target: modules with a parameter `name` of one shape (nn.Embedding tables).
    Afterwards target.<name> is computed (E_G.detach() + delta) at every access; the delta is
    target.parametrizations.<name>.original, which state_dict() and checkpoints hold.
    """
    weight = getattr(source, name)
    if getattr(target, name).shape != weight.shape:
        raise ValueError(f"cannot share {name} of shape {tuple(weight.shape)} with one of "
                         f"{tuple(getattr(target, name).shape)}")
    parametrize.register_parametrization(target, name, GradientDisentangled(weight))
    with torch.no_grad():
        getattr(target.parametrizations, name).original.zero_()


class ElectraObjective(nn.Module):
    """ELECTRA replaced-token detection (Clark et al. 2020), and DeBERTa-v3's variant.

    A small generator (MaskedLM) fills the masked positions by sampling (no gradient flows
    through the sample); the discriminator (ReplacedTokenDetector) sees every token and says
    which were replaced. A sample equal to the original counts as real. Loss = generator
    MLM + 50 x discriminator binary cross-entropy.
    embedding_sharing: "es" (ELECTRA) the two share their token, position and type tables and
      the embedding LayerNorm, trained by both losses; "gdes" (DeBERTa-v3) the discriminator's
      token (and absolute position) table is sg(generator's) + a delta of its own
      (GradientDisentangled), everything else in the embeddings is each model's own; "none"
      nothing is shared.
    """

    stat_names = ("mlm_sum", "masked", "correct", "disc_sum", "tokens", "disc_correct",
                  "replaced", "disc_tp", "disc_pred",
                  *(f"real_bin{i}" for i in range(AUC_BINS)),
                  *(f"replaced_bin{i}" for i in range(AUC_BINS)))
    weights = (1.0, ELECTRA_DISCRIMINATOR_WEIGHT)

    def __init__(self, generator: MaskedLM, discriminator: ReplacedTokenDetector,
                 corruption: MLMCorruption, masking: str = "token",
                 continues: np.ndarray | None = None, pad_id: int = 0,
                 embedding_sharing: str = "es"):
        super().__init__()
        if embedding_sharing not in EMBEDDING_SHARING:
            raise ValueError(f"embedding_sharing must be one of {EMBEDDING_SHARING}, got "
                             f"{embedding_sharing!r}")
        self.mlm = MaskedLMObjective(generator, corruption, masking, continues, pad_id)
        self.discriminator = discriminator
        self.embedding_sharing = embedding_sharing
        gen, disc = generator.encoder.embeddings, discriminator.encoder.embeddings
        if embedding_sharing != "none" and gen.word.weight.shape != disc.word.weight.shape:
            raise ValueError("generator and discriminator need the same embedding width to "
                             "share embeddings; build the generator with generator_config()")
        if embedding_sharing == "es":
            for name in ("word", "position", "token_type", "norm"):
                setattr(gen, name, getattr(disc, name))
        elif embedding_sharing == "gdes":
            for name in ("word", "position"):
                if getattr(disc, name) is not None and getattr(gen, name) is not None:
                    share_gradient_disentangled(getattr(gen, name), getattr(disc, name))

    @property
    def generator(self) -> MaskedLM:
        return self.mlm.model

    def prepare(self, batch: dict, corruption: MLMCorruption | None = None):
        seg, counts = self.mlm.prepare(batch, corruption)
        b, n = batch["input_ids"].shape
        # One sample id per segment (its row's id and start column) keys the generator's draw.
        moved = to_segments(
            {"sid": batch["sample_ids"][:, None].expand(b, n).contiguous(),
             "col": torch.arange(n).expand(b, n).contiguous()},
            batch["attention_mask"], batch["position_ids"], {"sid": 0, "col": 0})
        seg["segment_ids"] = moved["sid"][:, 0] * n + moved["col"][:, 0]
        tokens = float(seg["attention_mask"].sum())
        return seg, torch.cat([counts, torch.tensor([tokens], dtype=torch.float64)])

    def forward(self, input_ids, attention_mask, position_ids, labels, segment_ids):
        ce, mlm_stats, logits = _decode_labelled(self.generator, input_ids, attention_mask,
                                                 position_ids, labels, keep_logits=True)
        with torch.no_grad():
            fake, replaced = self.mlm.corruption.electra_sample(
                input_ids.cpu(), labels.cpu(), logits.detach().float().cpu(),
                sample_ids=segment_ids.cpu())
        fake, replaced = fake.to(input_ids.device), replaced.to(input_ids.device)
        hidden = self.discriminator.encoder(fake, attention_mask=attention_mask,
                                            position_ids=position_ids,
                                            backend="unpadded").last_hidden_state  # (S, M, H)
        disc_logits = self.discriminator.head(hidden)[attention_mask].float()  # (T,)
        truth = replaced[attention_mask]  # (T,) bool
        bce = F.binary_cross_entropy_with_logits(disc_logits, truth.float(), reduction="sum")
        said = disc_logits.detach() > 0  # (T,) predicted "replaced"
        tokens = torch.tensor(float(len(truth)), dtype=torch.float64, device=ce.device)
        # Probability histograms of real and replaced tokens: summable over batches and
        # ranks, they give the AUC in metrics() (to 1 / AUC_BINS).
        bins = (torch.sigmoid(disc_logits.detach()) * AUC_BINS).long().clamp_(0, AUC_BINS - 1)
        hist = torch.zeros(2, AUC_BINS, dtype=torch.float64, device=ce.device)
        hist.index_put_((truth.long(), bins), torch.ones_like(bins, dtype=torch.float64),
                        accumulate=True)
        stats = torch.cat([mlm_stats, torch.stack([
            bce.detach().double(), tokens, (said == truth).sum().double(), truth.sum().double(),
            (said & truth).sum().double(), said.sum().double()]), hist.reshape(-1)])
        return torch.stack([ce, bce]), stats

    @staticmethod
    def metrics(stats: dict[str, float]) -> dict[str, float]:
        out = MaskedLMObjective.metrics(stats)
        tokens = max(stats["tokens"], 1.0)
        disc = stats["disc_sum"] / tokens
        precision = stats["disc_tp"] / max(stats["disc_pred"], 1.0)
        recall = stats["disc_tp"] / max(stats["replaced"], 1.0)
        out.update(loss=out["mlm_loss"] + ELECTRA_DISCRIMINATOR_WEIGHT * disc, disc_loss=disc,
                   disc_accuracy=stats["disc_correct"] / tokens,
                   replaced_fraction=stats["replaced"] / tokens,
                   replaced_precision=precision, replaced_recall=recall,
                   replaced_f1=2 * precision * recall / max(precision + recall, 1e-12),
                   disc_auc=_binned_auc([stats[f"real_bin{i}"] for i in range(AUC_BINS)],
                                        [stats[f"replaced_bin{i}"] for i in range(AUC_BINS)]))
        return out

    def models(self) -> dict[str, nn.Module]:
        return {"model": self.discriminator, "generator": self.generator}


def _binned_auc(real: list[float], replaced: list[float]) -> float:
    """ROC AUC from histograms of the scores of negatives (real) and positives (replaced)
    over the same ascending bins; pairs within one bin count one half. nan without both."""
    n_real, n_replaced = sum(real), sum(replaced)
    if not n_real or not n_replaced:
        return float("nan")
    below, wins = 0.0, 0.0
    for neg, pos in zip(real, replaced, strict=True):
        wins += pos * (below + 0.5 * neg)
        below += neg
    return wins / (n_real * n_replaced)


def build_objective(name: str, model: nn.Module, corruption: MLMCorruption | None,
                    masking: str = "token", continues: np.ndarray | None = None,
                    generator: MaskedLM | None = None, pad_id: int = 0,
                    embedding_sharing: str = "es") -> nn.Module:
    """The objective called `name` ("mlm", "electra", "causal") around the given model(s);
    embedding_sharing: ELECTRA's ("es", "gdes", "none"; see ElectraObjective)."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
    if name == "causal":
        return CausalLMObjective(model, pad_id)
    if name == "mlm":
        return MaskedLMObjective(model, corruption, masking, continues, pad_id)
    return ElectraObjective(generator, model, corruption, masking, continues, pad_id,
                            embedding_sharing)


def eval_corruption(corruption: MLMCorruption, seed: int = 1234) -> MLMCorruption:
    """The fixed corruption of the validation batches: same rate, its own seed."""
    return replace(corruption, seed=seed)


__all__ = [
    "ELECTRA_DISCRIMINATOR_WEIGHT",
    "EMBEDDING_SHARING",
    "MASKINGS",
    "OBJECTIVES",
    "CausalLMObjective",
    "ElectraObjective",
    "GradientDisentangled",
    "MaskedLMObjective",
    "build_objective",
    "eval_corruption",
    "generator_config",
    "share_gradient_disentangled",
]
