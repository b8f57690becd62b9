"""Task heads, and task models that put one on top of an Encoder.

Axes: B batch, L length, H hidden size, E embedding width, V vocabulary, C labels,
N positions with a label (labels != -100).

Heads (each maps encoder outputs to task outputs; none knows about checkpoints):
  MaskedLMHead                dense -> act -> LayerNorm -> decoder tied to the word embeddings
  SequenceClassificationHead  pool (cls / mean) -> [dense -> act (-> LayerNorm)] -> dropout -> C
  TokenClassificationHead     [dense -> act (-> LayerNorm)] -> dropout -> C per token
  QuestionAnsweringHead       [dense -> act (-> LayerNorm)] -> start / end logits per token
  ReplacedTokenHead           dense -> act -> 1 logit per token (ELECTRA discriminator)
  pool(...)                   cls / mean / max pooling that respects the padding mask

Task models (TASKS): MaskedLM, SequenceClassifier, MultipleChoice, TokenClassifier,
QuestionAnswering, ReplacedTokenDetector, Embedder. Each has `.encoder` and (except Embedder)
`.head`, takes the Encoder's inputs plus labels, and returns a small dataclass with `loss` when
labels are given. Load and save them with unmask.checkpoints.load / save (checkpoints know the
heads, not the other way round). Labels use -100 for "no loss here", as in Hugging Face.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.batching import IGNORE_INDEX, padded_batches
from unmask.config import EncoderConfig, _int_at_least
from unmask.dropout import Dropout
from unmask.model import Encoder, _Output, activation, init_weights

POOLINGS = ("cls", "mean", "max")


# --- building blocks -------------------------------------------------------------------------

class Transform(nn.Module):
    """dense (in -> out) -> activation -> optional LayerNorm, on (..., in) -> (..., out).

    BERT's MLM transform and pooler, RoBERTa's classifier dense, ModernBERT's prediction head.
    """

    def __init__(self, in_dim: int, out_dim: int, activation_name: str = "gelu",
                 norm_eps: float | None = None, bias: bool = True, norm_bias: bool = True):
        super().__init__()
        self.dense = nn.Linear(in_dim, out_dim, bias=bias)
        self.act = activation(activation_name)
        self.norm = nn.LayerNorm(out_dim, eps=norm_eps, bias=norm_bias) if norm_eps else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dense(x))
        return self.norm(x) if self.norm is not None else x


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str = "mean"):
    """Pool token vectors into one vector per sequence, ignoring padding.

    hidden: float (B, L, H). attention_mask: (B, L) bool or 0/1, True = real token; None = all.
    mode: "cls" (the first real token: position 0 with right padding, as BERT), "mean"
        (average of real tokens, as sentence-transformers), "max" (elementwise max over real
        tokens). A row without real tokens pools to zeros.
    Returns float (B, H) in hidden's dtype.
    """
    if mode not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
    if attention_mask is None:
        if mode == "cls":
            return hidden[:, 0]
        return hidden.mean(dim=1) if mode == "mean" else hidden.amax(dim=1)
    real = attention_mask.to(device=hidden.device, dtype=torch.bool)  # (B, L)
    if mode == "mean":
        weights = real.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, H)
    if mode == "cls":
        first = real.to(torch.int8).argmax(dim=1)  # (B,) first real token (0 if none)
        out = hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    else:
        out = hidden.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, H)
    return out.masked_fill(~real.any(dim=1, keepdim=True), 0.0)  # rows without real tokens


class _Head(nn.Module):
    """Remembers its constructor arguments, so a checkpoint can rebuild it (spec())."""

    def _remember(self, args: dict[str, Any]) -> None:
        """args: the constructor's locals() before any other assignment."""
        self._spec = {k: v for k, v in args.items() if k not in ("self", "__class__")}

    def spec(self) -> dict[str, Any]:
        """Constructor arguments of this head (JSON-able)."""
        return dict(self._spec)


class _Classifier(_Head):
    """[dense -> activation (-> LayerNorm)] -> dropout -> linear: (..., H) -> (..., C)."""

    def __init__(self, hidden_size: int, num_labels: int, activation: str | None,
                 norm_eps: float | None, dense_bias: bool, norm_bias: bool, dropout: float):
        super().__init__()
        _int_at_least("num_labels", num_labels, 1, " (1 = regression)")
        self.dense = None if activation is None else Transform(
            hidden_size, hidden_size, activation, norm_eps, dense_bias, norm_bias)
        self.drop = Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            x = self.dense(x)
        return self.out(self.drop(x))


class MaskedLMHead(_Head):
    """Masked-LM head: transform (H -> E) -> decoder (E -> V) tied to the word embeddings.

    embedding_size: E (ALBERT / ELECTRA generator project down before decoding; None = H).
    tied: decode with the encoder's word embedding matrix (passed to forward); False gives
        the head its own decoder weight (checkpoints with tie_word_embeddings=False).
    """

    def __init__(self, hidden_size: int, vocab_size: int, embedding_size: int | None = None,
                 activation: str = "gelu", norm_eps: float = 1e-12, dense_bias: bool = True,
                 norm_bias: bool = True, decoder_bias: bool = True, tied: bool = True):
        super().__init__()
        self._remember(locals())
        e = embedding_size or hidden_size
        self.transform = Transform(hidden_size, e, activation, norm_eps, dense_bias, norm_bias)
        self.decoder = None if tied else nn.Linear(e, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if decoder_bias else None

    def decoder_weight(self, word_embeddings: torch.Tensor) -> torch.Tensor:
        """The (V, E) decoder matrix: word_embeddings when tied, else the head's own."""
        return word_embeddings if self.decoder is None else self.decoder.weight

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """hidden: (..., H); word_embeddings: (V, E), used when tied. Returns logits (..., V)."""
        return F.linear(self.transform(hidden), self.decoder_weight(word_embeddings), self.bias)


class SequenceClassificationHead(_Classifier):
    """pool -> [dense -> activation (-> LayerNorm)] -> dropout -> linear to num_labels.

    pooling: "cls" or "mean" (see pool). activation: None for no dense layer, else its
    activation: "tanh" (BERT / ALBERT pooler, RoBERTa), "gelu" (ELECTRA, ModernBERT with
    norm_eps), "relu" (DistilBERT). num_labels=1 means regression.
    """

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls",
                 activation: str | None = "tanh", norm_eps: float | None = None,
                 dense_bias: bool = True, norm_bias: bool = True, dropout: float = 0.1):
        if pooling not in ("cls", "mean"):
            raise ValueError(f"classification pooling must be 'cls' or 'mean', got {pooling!r}")
        super().__init__(hidden_size, num_labels, activation, norm_eps, dense_bias, norm_bias,
                         dropout)
        self._remember(locals())
        self.pooling = pooling

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """hidden: (B, L, H); attention_mask: (B, L) or None. Returns logits (B, C)."""
        return super().forward(pool(hidden, attention_mask, self.pooling))  # pooled: (B, H)


class TokenClassificationHead(_Classifier):
    """[dense -> activation (-> LayerNorm)] -> dropout -> linear, per token: (B, L, C)."""

    def __init__(self, hidden_size: int, num_labels: int, activation: str | None = None,
                 norm_eps: float | None = None, dense_bias: bool = True, norm_bias: bool = True,
                 dropout: float = 0.1):
        super().__init__(hidden_size, num_labels, activation, norm_eps, dense_bias, norm_bias,
                         dropout)
        self._remember(locals())


class QuestionAnsweringHead(TokenClassificationHead):
    """Extractive QA: two logits per token, answer start and end."""

    def __init__(self, hidden_size: int, activation: str | None = None,
                 norm_eps: float | None = None, dense_bias: bool = True, norm_bias: bool = True,
                 dropout: float = 0.1):
        super().__init__(hidden_size, 2, activation, norm_eps, dense_bias, norm_bias, dropout)
        self._spec.pop("num_labels")

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden: (B, L, H) -> (start_logits, end_logits), each (B, L)."""
        return super().forward(hidden).unbind(dim=-1)


class ReplacedTokenHead(_Head):
    """ELECTRA discriminator: dense -> activation -> one logit per token, "was replaced"."""

    def __init__(self, hidden_size: int, activation: str = "gelu"):
        super().__init__()
        self._remember(locals())
        self.dense = Transform(hidden_size, hidden_size, activation)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (B, L, H) -> logits (B, L); > 0 means "replaced"."""
        return self.out(self.dense(hidden)).squeeze(-1)


def default_head_activation(config: EncoderConfig) -> str:
    """The activation a head uses by default: the encoder's (GeGLU's gelu for "geglu")."""
    return "gelu" if config.activation == "geglu" else config.activation


# --- outputs ---------------------------------------------------------------------------------

@dataclass
class MaskedLMOutput(_Output):
    """logits: (B, L, V), or (N, V) with masked_only=True (rows where labels != -100, in
    row-major order; `positions` holds their flat indices into B * L). loss: scalar mean
    cross-entropy over labelled positions, when labels are given."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class ClassifierOutput(_Output):
    """logits: (B, C) for sequences, (B, L, C) for tokens, (B, L) for replaced-token
    detection. loss: scalar, when labels are given."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class QuestionAnsweringOutput(_Output):
    """start_logits, end_logits: (B, L). loss: mean of the start and end cross-entropies."""

    start_logits: torch.Tensor
    end_logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class EmbeddingOutput(_Output):
    """embeddings: (B, H) pooled (and L2-normalised when the Embedder normalises);
    last_hidden_state: (B, L, H)."""

    embeddings: torch.Tensor
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


# --- task models -----------------------------------------------------------------------------

class TaskModel(nn.Module):
    """Base of the task models: an `encoder` and a `head`.

    Every task model takes `backend` (attention kernel) and `layout` ("padded" / "unpadded")
    for its encoder, as unmask.model.Encoder does, at construction and per forward call.
    """

    task: str = ""

    def _build(self, config: EncoderConfig, backend: str, layout: str, head: nn.Module | None,
               default: Callable[[], nn.Module]) -> None:
        """Set .encoder and .head: the given head, or default() with BERT's initialisation."""
        self.encoder = Encoder(config, backend, layout)
        if head is None:
            head = default()
            head.apply(init_weights)
        self.head = head

    @property
    def config(self) -> EncoderConfig:
        return self.encoder.config

    def spec(self) -> dict[str, Any]:
        """What, besides the EncoderConfig, rebuilds this model (JSON-able)."""
        return {"head": self.head.spec()}


class MaskedLM(TaskModel):
    """Encoder + MaskedLMHead (decoder tied to the word embeddings).

    config: EncoderConfig. head: a MaskedLMHead (default: BERT's, with the encoder's
    activation and eps).
    """

    task = "masked_lm"

    def __init__(self, config: EncoderConfig, head: MaskedLMHead | None = None,
                 backend: str = "sdpa", layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head, lambda: MaskedLMHead(
            config.hidden_size, config.vocab_size, config.embedding_size,
            default_head_activation(config), config.layer_norm_eps, norm_bias=config.norm_bias))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, labels=None, masked_only: bool = False,
                output_hidden_states: bool = False, backend: str | None = None,
                layout: str | None = None) -> MaskedLMOutput:
        """Encoder inputs as in Encoder.forward, plus:

        labels: int64 (B, L) target ids, -100 where there is no loss (unmasked tokens).
        masked_only: decode only the rows where labels != -100 (needs labels). The decoder is
            the largest matmul of the model (H x V per token); with 15-30% of tokens masked
            this skips 70-85% of it. logits are then (N, V).
        Returns MaskedLMOutput (loss = mean cross-entropy over labelled positions).
        """
        if masked_only and labels is None:
            raise ValueError("masked_only=True decodes the labelled positions: pass labels")
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        hidden = out.last_hidden_state  # (B, L, H)
        positions = None
        if labels is not None:
            labels = _check_token_labels(labels, hidden)
            if labels.is_floating_point():
                raise TypeError(f"labels must be integer ids (-100 = no loss), got {labels.dtype}")
        if masked_only:
            positions = (labels.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)  # (N,)
            hidden = hidden.reshape(-1, hidden.shape[-1])[positions]  # (N, H)
            labels = labels.reshape(-1)[positions]  # (N,)
        logits = self.head(hidden, self.encoder.embeddings.word.weight)  # (B, L, V) or (N, V)
        loss = None if labels is None else _token_cross_entropy(logits, labels)
        return MaskedLMOutput(logits=logits, loss=loss, positions=positions,
                              hidden_states=out.hidden_states)


class SequenceClassifier(TaskModel):
    """Encoder + SequenceClassificationHead: one label (or score) per sequence.

    num_labels: C (1 = regression with a mean-squared-error loss).
    problem_type: None (decided from the labels, as Hugging Face: num_labels=1 regression,
        integer labels single-label, float labels multi-label), or one of "regression",
        "single_label_classification", "multi_label_classification".
    id2label: optional {index: name}, kept with the checkpoint.
    """

    task = "sequence_classification"

    def __init__(self, config: EncoderConfig, num_labels: int = 2,
                 head: SequenceClassificationHead | None = None, problem_type: str | None = None,
                 id2label: dict[int, str] | None = None, backend: str = "sdpa",
                 layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head, lambda: SequenceClassificationHead(
            config.hidden_size, num_labels, dropout=config.hidden_dropout))
        self.num_labels = self.head.out.out_features
        if problem_type not in (None, "regression", "single_label_classification",
                                "multi_label_classification"):
            raise ValueError(f"unknown problem_type {problem_type!r}")
        self.problem_type = problem_type
        self.id2label = id2label

    def spec(self) -> dict[str, Any]:
        return {"head": self.head.spec(), "problem_type": self.problem_type,
                "id2label": self.id2label}

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, labels=None, output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> ClassifierOutput:
        """Encoder inputs as in Encoder.forward, plus labels: (B,) int64 class ids, (B,)
        float targets for regression, or (B, C) float 0/1 for multi-label.
        Returns ClassifierOutput with logits (B, C)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        logits = self.head(out.last_hidden_state, attention_mask)  # (B, C)
        loss = None if labels is None else self._loss(logits, labels)
        return ClassifierOutput(logits=logits, loss=loss, hidden_states=out.hidden_states)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = torch.as_tensor(labels, device=logits.device)
        kind = self.problem_type or (
            "regression" if self.num_labels == 1
            else "multi_label_classification" if labels.is_floating_point()
            else "single_label_classification")
        if kind == "regression":
            target = labels.to(logits.dtype).reshape(logits.shape[0], -1)
            return F.mse_loss(logits.reshape(target.shape), target)
        if kind == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(f"multi-label targets must be (B, C) = {tuple(logits.shape)}, "
                                 f"got {tuple(labels.shape)}")
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if labels.is_floating_point() or labels.reshape(-1).shape[0] != logits.shape[0]:
            raise ValueError(f"class labels must be (B,) integers with B={logits.shape[0]}, got "
                             f"{tuple(labels.shape)} {labels.dtype}")
        return F.cross_entropy(logits, labels.reshape(-1).long(), ignore_index=IGNORE_INDEX)


class MultipleChoice(TaskModel):
    """Encoder + a one-output SequenceClassificationHead: a score per choice (SWAG, RACE).

    Inputs are (B, C, L), C choices per example, each encoded as its own row; logits (B, C).
    """

    task = "multiple_choice"

    def __init__(self, config: EncoderConfig, head: SequenceClassificationHead | None = None,
                 backend: str = "sdpa", layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head, lambda: SequenceClassificationHead(
            config.hidden_size, 1, dropout=config.hidden_dropout))
        if self.head.out.out_features != 1:
            raise ValueError(f"a multiple-choice head scores each choice with one output, got "
                             f"{self.head.out.out_features}")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, labels=None, output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> ClassifierOutput:
        """input_ids, attention_mask, token_type_ids: (B, C, L); labels: (B,) int64, the right
        choice. Returns ClassifierOutput with logits (B, C)."""
        input_ids = torch.as_tensor(input_ids)
        if input_ids.dim() != 3:
            raise ValueError(f"multiple choice takes input_ids (B, C, L), got shape "
                             f"{tuple(input_ids.shape)}")
        b, c, n = input_ids.shape

        def rows(t):  # (B, C, L) -> (B * C, L); (L,) positions are shared as they are
            if t is None:
                return None
            t = torch.as_tensor(t)
            return t.reshape(b * c, n) if t.dim() == 3 else t

        attention_mask = rows(attention_mask)
        out = self.encoder(rows(input_ids), attention_mask, rows(token_type_ids),
                           rows(position_ids), mask, output_hidden_states, backend=backend,
                           layout=layout)
        logits = self.head(out.last_hidden_state, attention_mask).view(b, c)  # (B, C)
        loss = None
        if labels is not None:
            labels = torch.as_tensor(labels, device=logits.device)
            if labels.is_floating_point() or labels.shape != (b,):
                raise ValueError(f"multiple-choice labels must be (B,) = ({b},) choice indices, "
                                 f"got {tuple(labels.shape)} {labels.dtype}")
            loss = F.cross_entropy(logits, labels)
        return ClassifierOutput(logits=logits, loss=loss, hidden_states=out.hidden_states)


class TokenClassifier(TaskModel):
    """Encoder + TokenClassificationHead: one label per token (NER, POS)."""

    task = "token_classification"

    def __init__(self, config: EncoderConfig, num_labels: int = 2,
                 head: TokenClassificationHead | None = None,
                 id2label: dict[int, str] | None = None, backend: str = "sdpa",
                 layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head, lambda: TokenClassificationHead(
            config.hidden_size, num_labels, dropout=config.hidden_dropout))
        self.num_labels = self.head.out.out_features
        self.id2label = id2label

    def spec(self) -> dict[str, Any]:
        return {"head": self.head.spec(), "id2label": self.id2label}

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, labels=None, output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> ClassifierOutput:
        """Encoder inputs, plus labels: int64 (B, L) class ids, -100 for no loss (padding,
        specials, word continuations). Returns ClassifierOutput with logits (B, L, C)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        logits = self.head(out.last_hidden_state)  # (B, L, C)
        loss = None if labels is None else _token_cross_entropy(
            logits, _check_token_labels(labels, logits))
        return ClassifierOutput(logits=logits, loss=loss, hidden_states=out.hidden_states)


class QuestionAnswering(TaskModel):
    """Encoder + QuestionAnsweringHead: answer span start / end logits per token."""

    task = "question_answering"

    def __init__(self, config: EncoderConfig, head: QuestionAnsweringHead | None = None,
                 backend: str = "sdpa", layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head,
                    lambda: QuestionAnsweringHead(config.hidden_size, dropout=0.0))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, start_positions=None, end_positions=None,
                output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> QuestionAnsweringOutput:
        """Encoder inputs, plus start_positions / end_positions: int64 (B,) token indices of
        the answer span (positions outside [0, L) are ignored, as in Hugging Face).
        Returns QuestionAnsweringOutput with start_logits, end_logits (B, L)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        start, end = self.head(out.last_hidden_state)  # (B, L) each
        loss = None
        if (start_positions is None) != (end_positions is None):
            raise ValueError("pass both start_positions and end_positions, or neither")
        if start_positions is not None:
            n = start.shape[1]
            # Out-of-range targets (answer truncated away) become index n, ignored.
            s = torch.as_tensor(start_positions, device=start.device).reshape(-1).clamp(0, n)
            e = torch.as_tensor(end_positions, device=start.device).reshape(-1).clamp(0, n)
            loss = (F.cross_entropy(start, s, ignore_index=n)
                    + F.cross_entropy(end, e, ignore_index=n)) / 2
        return QuestionAnsweringOutput(start_logits=start, end_logits=end, loss=loss,
                                       hidden_states=out.hidden_states)


class ReplacedTokenDetector(TaskModel):
    """Encoder + ReplacedTokenHead: ELECTRA's discriminator ("was this token replaced?")."""

    task = "replaced_token_detection"

    def __init__(self, config: EncoderConfig, head: ReplacedTokenHead | None = None,
                 backend: str = "sdpa", layout: str = "padded"):
        super().__init__()
        self._build(config, backend, layout, head,
                    lambda: ReplacedTokenHead(config.hidden_size, default_head_activation(config)))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, labels=None, output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> ClassifierOutput:
        """Encoder inputs, plus labels: (B, L) 1 = replaced, 0 = original, -100 = no loss.
        The loss is binary cross-entropy over real tokens (attention_mask) with a label.
        Returns ClassifierOutput with logits (B, L)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        logits = self.head(out.last_hidden_state)  # (B, L)
        loss = None
        if labels is not None:
            labels = _check_token_labels(labels, logits)
            keep = labels != IGNORE_INDEX
            if attention_mask is not None:
                keep &= torch.as_tensor(attention_mask, device=keep.device).bool()
            loss = F.binary_cross_entropy_with_logits(logits[keep], labels[keep].to(logits.dtype))
        return ClassifierOutput(logits=logits, loss=loss, hidden_states=out.hidden_states)


class Embedder(TaskModel):
    """Encoder + pooling: one vector per text (sentence-transformers style).

    pooling: "mean" (default), "cls" or "max". normalize: L2-normalise the pooled vectors
    (cosine similarity becomes a dot product). max_length: longest input in tokens for
    encode() (None = what the position table allows).
    """

    task = "embedding"

    def __init__(self, config: EncoderConfig, pooling: str = "mean", normalize: bool = True,
                 max_length: int | None = None, backend: str = "sdpa",
                 layout: str = "unpadded"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = Encoder(config, backend, layout)
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length

    def spec(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "normalize": self.normalize,
                "max_length": self.max_length}

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                mask=None, output_hidden_states: bool = False,
                backend: str | None = None, layout: str | None = None) -> EmbeddingOutput:
        """Encoder inputs as in Encoder.forward. Returns EmbeddingOutput, embeddings (B, H)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, position_ids, mask,
                           output_hidden_states, backend=backend, layout=layout)
        emb = pool(out.last_hidden_state, attention_mask, self.pooling)  # (B, H)
        if self.normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return EmbeddingOutput(embeddings=emb, last_hidden_state=out.last_hidden_state,
                               hidden_states=out.hidden_states)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], tokenizer, batch_tokens: int = 16384,
               max_length: int | None = None) -> torch.Tensor:
        """Embed many texts fast: tokenize once, sort by length, batch by a token budget.

        texts: list of N strings. tokenizer: an unmask.tokenizer.Tokenizer (anything whose
        encode_batch(texts, max_length=..., padding=False).input_ids gives lists of ids).
        batch_tokens: padded tokens per forward pass (memory ~ batch_tokens x hidden size).
        max_length: truncate longer texts (None = self.max_length or the model's limit).
        Returns float32 (N, H) in the order of `texts`. Runs in the model's dtype (convert
        with .to(torch.bfloat16) for a bf16 model) and its eval/train mode as set.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text as [text]")
        cfg = self.config
        limit = max_length or self.max_length or (cfg.max_position_embeddings
                                                  - cfg.position_offset)
        ids = tokenizer.encode_batch(list(texts), max_length=limit, padding=False).input_ids
        device = self.encoder.embeddings.word.weight.device
        out = torch.zeros(len(ids), cfg.hidden_size, dtype=torch.float32)
        for batch in padded_batches(ids, batch_tokens, cfg.pad_token_id, device=device):
            emb = self(batch.input_ids, batch.attention_mask).embeddings
            out[torch.from_numpy(batch.index)] = emb.float().cpu()
        return out


TASKS: dict[str, type[nn.Module]] = {
    "encoder": Encoder,
    "masked_lm": MaskedLM,
    "sequence_classification": SequenceClassifier,
    "multiple_choice": MultipleChoice,
    "token_classification": TokenClassifier,
    "question_answering": QuestionAnswering,
    "replaced_token_detection": ReplacedTokenDetector,
    "embedding": Embedder,
}


# --- losses ----------------------------------------------------------------------------------

def _check_token_labels(labels, like: torch.Tensor) -> torch.Tensor:
    """labels (B, L) for outputs `like` (B, L, ...), moved to like's device."""
    labels = torch.as_tensor(labels)
    if labels.shape != like.shape[:2]:
        raise ValueError(f"labels have shape {tuple(labels.shape)}, expected (B, L) = "
                         f"{tuple(like.shape[:2])}: one label per token, -100 for no loss")
    return labels.to(like.device)


def _token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labels != -100; logits (..., C), labels (...). 0 if none."""
    flat = labels.reshape(-1).long().to(logits.device)
    if not bool((flat != IGNORE_INDEX).any()):
        return logits.sum() * 0.0  # no labelled position: zero loss, gradient still defined
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat,
                           ignore_index=IGNORE_INDEX)


__all__ = [
    "IGNORE_INDEX",
    "POOLINGS",
    "TASKS",
    "ClassifierOutput",
    "Embedder",
    "EmbeddingOutput",
    "MaskedLM",
    "MaskedLMHead",
    "MaskedLMOutput",
    "QuestionAnswering",
    "QuestionAnsweringHead",
    "QuestionAnsweringOutput",
    "ReplacedTokenDetector",
    "ReplacedTokenHead",
    "SequenceClassificationHead",
    "SequenceClassifier",
    "TaskModel",
    "TokenClassificationHead",
    "TokenClassifier",
    "Transform",
    "default_head_activation",
    "pool",
]
