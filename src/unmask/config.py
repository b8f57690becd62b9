"""Encoder configuration: one plain dataclass and a few named sizes.

One `EncoderConfig` describes every encoder unmask runs: BERT, RoBERTa, DistilBERT, ELECTRA,
ALBERT and ModernBERT differ only in the fields below (see unmask.checkpoints for how each
Hugging Face config translates). Build one directly, from a preset, or from a checkpoint:

    >>> from unmask.config import EncoderConfig, preset
    >>> cfg = preset("mini", vocab_size=8000)           # BERT-mini: 4 layers x 256
    >>> cfg.num_layers, cfg.hidden_size, cfg.head_dim
    (4, 256, 64)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

POSITIONS = ("absolute", "rotary", "none")
RELATIVE_TERMS = ("c2p", "p2c")
NORMS = ("post", "pre")
# "gelu" is the exact (erf) GELU; "gelu_tanh" its tanh approximation, which Hugging Face calls
# "gelu_new" / "gelu_pytorch_tanh" ("gelu_new" is accepted as an alias). "geglu" is the gated
# MLP of ModernBERT: the up projection is twice as wide and gelu(a) * b is fed down.
ACTIVATIONS = ("gelu", "gelu_tanh", "gelu_new", "relu", "geglu")


@dataclass
class EncoderConfig:
    """Everything that fixes an encoder's shapes and arithmetic (not its task head).

    Sizes
      vocab_size, hidden_size, num_layers, num_heads, intermediate_size (MLP width),
      max_position_embeddings (rows of the absolute position table; with rotary positions,
      the longest sequence the model was trained for), type_vocab_size (segment embeddings;
      0 = none, as DistilBERT and ModernBERT), embedding_size (ALBERT / ELECTRA factorised
      embeddings: tokens are embedded at this width, then projected to hidden_size; None =
      hidden_size).
    Positions
      position: "absolute" (learned table, BERT), "rotary" (RoPE on q and k, ModernBERT) or
        "none" (DeBERTa: relative terms only).
      position_offset: added to 0-based positions before the table lookup (RoBERTa: 2, since
        its table reserves rows 0..pad_token_id).
      rope_theta: RoPE base of global layers; local_rope_theta: of local (sliding-window)
        layers (None = rope_theta). ModernBERT uses 160000 and 10000.
    Block
      norm: "post" (BERT: x = norm(x + f(x))) or "pre" (ModernBERT: x = x + f(norm(x)), a final
        norm after the last block, and none before the first block's attention because the
        embeddings already end in one).
      activation: one of ACTIVATIONS. attention_bias / mlp_bias / norm_bias: whether those
        layers have biases (ModernBERT: none). layer_norm_eps.
      hidden_dropout (embeddings, attention output, MLP output), attention_dropout (on the
        attention probabilities). Only active in training mode.
    Sharing and sparsity
      shared_layers: ALBERT. The number of distinct blocks (None = one per layer); layer i
        runs block i * shared_layers // num_layers.
      local_window: ModernBERT local attention. Total window size w: a local layer lets query
        i see keys j with |i - j| <= w // 2. None = every layer global.
      global_every: with local_window, layers 0, N, 2N, ... are global and the rest local.
    pad_token_id: the padding id (RoBERTa's position offset derives from it).
    DeBERTa's disentangled attention (unmask.relative; all off by default)
      relative_attention: the relative-position terms added to the scores, a subset of
        ("c2p", "p2c"); () = none (BERT). position_buckets: v3's log buckets (0 = plain
        distances). max_relative_positions: the longest distance told apart (0 =
        max_position_embeddings). relative_norm: LayerNorm on the relative table
        (norm_rel_ebd). share_att_key: project the table with the block's own query / key
        projections instead of separate ones. conv_kernel_size / conv_activation: v2's
        convolution beside the first layer (0 = none).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    embedding_size: int | None = None
    position: str = "absolute"
    position_offset: int = 0
    rope_theta: float = 10000.0
    local_rope_theta: float | None = None
    norm: str = "post"
    activation: str = "gelu"
    attention_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    shared_layers: int | None = None
    local_window: int | None = None
    global_every: int = 1
    pad_token_id: int = 0
    relative_attention: tuple[str, ...] = ()
    position_buckets: int = 0
    max_relative_positions: int = 0
    relative_norm: bool = False
    share_att_key: bool = False
    conv_kernel_size: int = 0
    conv_activation: str = "tanh"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings", "global_every"):
            _int_at_least(name, getattr(self, name), 1)
        for name in ("embedding_size", "shared_layers", "local_window"):  # None = off
            if getattr(self, name) is not None:
                _int_at_least(name, getattr(self, name), 1)
        for name in ("type_vocab_size", "position_offset", "position_buckets",
                     "max_relative_positions", "conv_kernel_size"):
            _int_at_least(name, getattr(self, name), 0)
        for name, choices in (("position", POSITIONS), ("norm", NORMS),
                              ("activation", ACTIVATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}; "
                f"pick num_heads dividing it (e.g. {self.hidden_size // 64 or 1} for 64-wide heads)"
            )
        if self.position == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim}")
        for name in ("hidden_dropout", "attention_dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {p!r}")
        if self.shared_layers is not None and self.shared_layers > self.num_layers:
            raise ValueError(
                f"shared_layers={self.shared_layers} exceeds num_layers={self.num_layers}; "
                "it counts the distinct blocks that the layers share"
            )
        self.relative_attention = tuple(self.relative_attention)  # JSON gives a list
        odd = [t for t in self.relative_attention if t not in RELATIVE_TERMS]
        if odd:
            raise ValueError(f"relative_attention takes terms from {RELATIVE_TERMS}, got {odd}")

    # --- derived -------------------------------------------------------------------------
    @property
    def relative_span(self) -> int:
        """Distances the relative table tells apart each way (its rows are 2 * span)."""
        return self.position_buckets or self.max_relative_positions or self.max_position_embeddings

    @property
    def head_dim(self) -> int:
        """hidden_size // num_heads."""
        return self.hidden_size // self.num_heads

    @property
    def embed_dim(self) -> int:
        """Width of the token embeddings (embedding_size, or hidden_size when not factorised)."""
        return self.embedding_size or self.hidden_size

    @property
    def num_blocks(self) -> int:
        """Distinct blocks with their own weights (fewer than num_layers when shared)."""
        return self.shared_layers or self.num_layers

    def block_of(self, layer: int) -> int:
        """Index of the block that layer `layer` runs (ALBERT's layer groups)."""
        return layer * self.num_blocks // self.num_layers

    def is_local(self, layer: int) -> bool:
        """Whether layer `layer` uses sliding-window attention (ModernBERT: not every N-th)."""
        return self.local_window is not None and layer % self.global_every != 0

    def rope_theta_of(self, layer: int) -> float:
        """RoPE base for layer `layer` (local layers may use their own)."""
        if self.is_local(layer) and self.local_rope_theta is not None:
            return self.local_rope_theta
        return self.rope_theta

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> EncoderConfig:
        """Inverse of to_dict. Unknown keys raise ValueError (a typo should not pass silently).

        source: where `d` came from (a file name), named in the errors, so that a config file
        holding a JSON array or number says so in one line instead of failing deep inside.
        """
        where = f"{source}: " if source else ""
        if not isinstance(d, dict):  # a file's content: ValueError, printed by the CLI as one line
            raise ValueError(  # noqa: TRY004
                f"{where}an encoder config must be a JSON object of fields, e.g. "
                f'{{"hidden_size": 256, ...}}; got a {type(d).__name__}'
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"{where}unknown EncoderConfig field(s) {unknown}; the fields are "
                f"{sorted(known)}. For a Hugging Face config.json use "
                "unmask.checkpoints.config_from_hf(...)."
            )
        return cls(**d)

    def replace(self, **changes: Any) -> EncoderConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _int_at_least(name: str, value: Any, low: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {what}{hint}, got {value!r}")


# Google's BERT miniatures (Turc et al. 2019) and BERT-base: layers x hidden, 64-wide heads,
# MLP 4x hidden.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_layers": 2, "hidden_size": 128, "num_heads": 2, "intermediate_size": 512},
    "mini": {"num_layers": 4, "hidden_size": 256, "num_heads": 4, "intermediate_size": 1024},
    "small": {"num_layers": 4, "hidden_size": 512, "num_heads": 8, "intermediate_size": 2048},
    "base": {"num_layers": 12, "hidden_size": 768, "num_heads": 12, "intermediate_size": 3072},
}


def preset(name: str, **overrides: Any) -> EncoderConfig:
    """A named BERT size ("tiny" 2x128, "mini" 4x256, "small" 4x512, "base" 12x768).

    overrides: any EncoderConfig field, e.g. vocab_size=8000 to match your tokenizer, or
    norm="pre", position="rotary", activation="geglu" for a ModernBERT-style model.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return EncoderConfig(**{**PRESETS[name], **overrides})


__all__ = ["ACTIVATIONS", "NORMS", "POSITIONS", "PRESETS", "EncoderConfig", "preset"]
