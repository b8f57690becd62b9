"""The encoder: embeddings, blocks, and two layouts (padded and unpadded) giving the same answer.

Axes: B batch, L padded length, T real tokens in the batch (sum of lengths), H hidden size,
E embedding width, nh heads, hd head dim (H = nh * hd), I MLP width.

One readable model covers the BERT family (see unmask.config for the switches):
  embeddings  word (+ token type) (+ learned absolute position), LayerNorm, dropout, and an
              optional E -> H projection (ALBERT / ELECTRA factorised embeddings);
  blocks      fused q/k/v projection, attention, output projection, MLP (GELU variants or
              GeGLU), residuals with post-LN (BERT) or pre-LN (ModernBERT, plus a final norm);
              RoPE on q and k when position="rotary"; sliding-window attention on local layers;
              ALBERT-style sharing of one block's weights across layers.

Attention math (every kernel, dropout, probabilities) lives in unmask.attention; the encoder
only builds the masks once per batch and picks a kernel (`backend`: "eager", "sdpa", "sparse",
"flex") and a layout, two independent settings. A block only ever mixes tokens inside
attention; everything else works per token on (..., H). So the same blocks run on two layouts:
  padded    (B, L, H) with a boolean key-padding mask.
  unpadded  padding is removed once, before the embeddings, giving packed (T, H) tokens; every
            linear layer, norm and MLP runs on real tokens only; for attention alone q/k/v are
            scattered back into (B, L) for one kernel call under the padding mask (CPU has no
            variable-length kernel), or, when padding is the only mask, into length groups of
            similar rows, one tightly padded call each (LengthGroups); padding is restored once
            after the last block. A batch without padding runs the padded layout (the same
            computation).
Both give the same outputs at real tokens (parity tests in tests/test_model.py). Outputs at
padding positions (hidden states, attention rows of padding queries) are unspecified: zeros on
the unpadded path, whatever the math gives on the padded path (Hugging Face does the same).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.attention import BACKENDS, attention
from unmask.config import EncoderConfig
from unmask.dropout import Dropout
from unmask.masks import Mask, resolve
from unmask.relative import ConvLayer, RelativeTable, relative_bias, relative_index

LAYOUTS = ("padded", "unpadded")
# What `backend=` accepts: the kernels, and "unpadded", the older name for layout="unpadded".
ENCODER_BACKENDS = (*BACKENDS, "unpadded")

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_tanh": partial(F.gelu, approximate="tanh"),
    "gelu_new": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
    "geglu": F.gelu,  # the gate is applied in MLP
    "tanh": torch.tanh,  # BERT's pooler; heads only
    "silu": F.silu,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise function called `name` ("gelu", "gelu_tanh", "relu", "tanh", ...)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


class _Output:
    """Base of the output dataclasses: out["name"] reads a field, as with transformers."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class EncoderOutput(_Output):
    """What `Encoder.forward` returns.

    last_hidden_state: (B, L, H) float, the last block's output (after the final norm for
        pre-LN models). Rows at padding positions are unspecified.
    hidden_states: with output_hidden_states, num_layers + 1 tensors (B, L, H): the embeddings
        (after any E -> H projection), then each layer's output; the last one is
        last_hidden_state (for pre-LN models: after the final norm, as in Hugging Face).
    attentions: with output_attentions, num_layers tensors (B, nh, L, L) of attention
        probabilities (rows sum to 1, or are all zero for a query with no allowed key).
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


# --- modules ---------------------------------------------------------------------------------

def _layer_norm(cfg: EncoderConfig, dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=cfg.layer_norm_eps, bias=cfg.norm_bias)


class Embeddings(nn.Module):
    """Token (+ type) (+ absolute position) embeddings -> LayerNorm -> dropout (-> E to H).

    Works on any index shape: (B, L) padded or (T,) packed. Returns (..., H).
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        e = cfg.embed_dim
        pad = cfg.pad_token_id if 0 <= cfg.pad_token_id < cfg.vocab_size else None
        self.word = nn.Embedding(cfg.vocab_size, e, padding_idx=pad)
        self.position = (
            nn.Embedding(cfg.max_position_embeddings, e) if cfg.position == "absolute" else None
        )
        self.token_type = nn.Embedding(cfg.type_vocab_size, e) if cfg.type_vocab_size else None
        self.norm = _layer_norm(cfg, e)
        self.drop = Dropout(cfg.hidden_dropout)
        self.project = nn.Linear(e, cfg.hidden_size) if e != cfg.hidden_size else None

    def forward(self, input_ids, position_ids, token_type_ids) -> torch.Tensor:
        """input_ids, position_ids, token_type_ids: int64 of one shape (...). Returns (..., H)."""
        x = self.word(input_ids)  # (..., E)
        # Same summation order as Hugging Face BERT (word + type, then + position): bit-for-bit.
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids)
        if self.position is not None:
            x = x + self.position(position_ids)
        x = self.drop(self.norm(x))
        return self.project(x) if self.project is not None else x  # (..., H)


class SelfAttention(nn.Module):
    """Fused q/k/v projection H -> 3H, and the output projection H -> H; with DeBERTa's
    relative terms, also the projections of the relative table (its own, or q/k's shared).

    The token mixing itself lives in the layout (padded or packed), passed to Block.forward.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        h = cfg.hidden_size
        self.qkv = nn.Linear(h, 3 * h, bias=cfg.attention_bias)
        self.out = nn.Linear(h, h, bias=cfg.attention_bias)
        self.terms, self.heads = cfg.relative_attention, cfg.num_heads
        separate = self.terms and not cfg.share_att_key
        self.pos_key = nn.Linear(h, h) if separate and "c2p" in self.terms else None
        self.pos_query = nn.Linear(h, h) if separate and "p2c" in self.terms else None

    def project_relative(self, table: torch.Tensor):
        """table (R, H) -> (Pk, Pq), each (nh, R, hd) or None where that term is off."""
        h, w, b = table.shape[-1], self.qkv.weight, self.qkv.bias

        def project(term: str, own: nn.Linear | None, part: int) -> torch.Tensor | None:
            if term not in self.terms:
                return None
            rows = slice(part * h, (part + 1) * h)  # part 0: q's rows of the fused qkv, 1: k's
            p = own(table) if own is not None else F.linear(
                table, w[rows], None if b is None else b[rows])  # (R, H)
            return p.view(p.shape[0], self.heads, -1).transpose(0, 1)  # (nh, R, hd)

        return project("c2p", self.pos_key, 1), project("p2c", self.pos_query, 0)


class MLP(nn.Module):
    """H -> I -> H with an activation; with "geglu", H -> 2I, gelu(a) * b, I -> H."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.gated = cfg.activation == "geglu"
        width = cfg.intermediate_size * (2 if self.gated else 1)
        self.up = nn.Linear(cfg.hidden_size, width, bias=cfg.mlp_bias)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., H) -> (..., H)."""
        h = self.up(x)  # (..., I) or (..., 2I)
        if self.gated:
            a, gate = h.chunk(2, dim=-1)  # (..., I) each
            return self.down(self.act(a) * gate)
        return self.down(self.act(h))


class Block(nn.Module):
    """One transformer layer, post-LN (BERT) or pre-LN (ModernBERT)."""

    def __init__(self, cfg: EncoderConfig, index: int):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        # Pre-LN block 0 has no attention norm: the embeddings end in a LayerNorm already.
        first_pre = self.pre_norm and index == 0
        self.attn_norm = nn.Identity() if first_pre else _layer_norm(cfg, cfg.hidden_size)
        self.attn = SelfAttention(cfg)
        self.mlp_norm = _layer_norm(cfg, cfg.hidden_size)
        self.mlp = MLP(cfg)
        self.drop = Dropout(cfg.hidden_dropout)

    def forward(self, x: torch.Tensor, attend: Callable[..., torch.Tensor]):
        """x: (B, L, H) or (T, H). attend: (fused qkv (..., 3H), SelfAttention) -> mixed
        values (..., H)."""
        if self.pre_norm:
            x = x + self.drop(self.attn.out(attend(self.attn.qkv(self.attn_norm(x)), self.attn)))
            return x + self.drop(self.mlp(self.mlp_norm(x)))
        x = self.attn_norm(x + self.drop(self.attn.out(attend(self.attn.qkv(x), self.attn))))
        return self.mlp_norm(x + self.drop(self.mlp(x)))


# --- rotary positions ------------------------------------------------------------------------

def rope_tables(positions: torch.Tensor, head_dim: int, theta: float):
    """cos, sin for RoPE: positions int (...) -> two float32 tensors (..., hd).

    Same arithmetic as Hugging Face (float32 inverse frequencies, halves concatenated).
    """
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device)
                  / head_dim)
    )  # (hd / 2,)
    freqs = positions[..., None].float() * inv_freq  # (..., hd / 2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (..., hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., hd) by the angles in cos/sin (broadcastable to x), in float32."""
    xf = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


def _and(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """a & b, where None is the mask that allows everything."""
    return b if a is None else a if b is None else a & b


# --- attention in either layout --------------------------------------------------------------

class _Attend:
    """Token mixing for Block.forward: fused q/k/v (..., 3H) -> unmask.attention -> (..., H).

    masks: {is_local: bool mask broadcastable to (B, nh, L, L) or None}, padding folded in.
    rope: {theta: (cos, sin) (B|1, L, 1, hd)} or None. keep: None for the padded layout
    ((B, L, 3H) in, (B, L, H) out); for the unpadded one, the (T,) flat index (row * L +
    column) of each real token: (T, 3H) is scattered into (B, L) (shape) for one attention
    call and the T real rows are gathered back, (T, H) out.
    probs: a list collecting each layer's probabilities (B, nh, L, L), or None.
    relative: DeBERTa's (table (R, H), index (B|1, L, L)) for unmask.relative, or None.
    groups: for the unpadded layout when padding is the only mask (see `LengthGroups`): rows
    of similar length attend in separate, tightly padded calls instead of one (B, L) call.
    """

    def __init__(self, cfg, masks, rope, backend, dropout_p, probs, keep=None, shape=None,
                 relative=None):
        self.cfg, self.masks, self.rope, self.backend = cfg, masks, rope, backend
        self.dropout_p, self.probs, self.keep, self.shape = dropout_p, probs, keep, shape
        self.relative = relative
        self.groups: LengthGroups | None = None

    def __call__(self, qkv: torch.Tensor, attn: SelfAttention, layer: int) -> torch.Tensor:
        cfg = self.cfg
        nh, hd = cfg.num_heads, cfg.head_dim
        if self.groups is not None:
            return self._grouped(qkv, nh, hd)
        if self.keep is not None:  # (T, 3H) -> (B, L, 3H), a fresh buffer: zeros at padding
            b, n = self.shape
            qkv = qkv.new_zeros(b * n, qkv.shape[-1]).index_copy_(0, self.keep, qkv).view(b, n, -1)
        b, n, _ = qkv.shape
        q, k, v = qkv.view(b, n, 3, nh, hd).unbind(2)  # (B, L, nh, hd) each
        if self.rope is not None:
            cos, sin = self.rope[cfg.rope_theta_of(layer)]  # (B|1, L, 1, hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, nh, L, hd)
        bias = scale = None
        if self.relative is not None:  # DeBERTa: c2p / p2c terms, all scaled alike
            table, index = self.relative
            scale = 1.0 / math.sqrt(hd * (1 + len(cfg.relative_attention)))
            bias = relative_bias(q, k, index, *attn.project_relative(table), scale)
        out = attention(q, k, v, self.masks[cfg.is_local(layer)], self.backend, bias=bias,
                        scale=scale, dropout_p=self.dropout_p,
                        return_probs=self.probs is not None)
        if self.probs is not None:
            out, probs = out
            self.probs.append(probs)
        out = out.transpose(1, 2).reshape(b, n, nh * hd)  # (B, L, H)
        return out if self.keep is None else out.view(b * n, -1).index_select(0, self.keep)

    def _grouped(self, qkv: torch.Tensor, nh: int, hd: int) -> torch.Tensor:
        """(T, 3H) packed -> (T, H): one attention call per length group (LengthGroups)."""
        g = self.groups
        buf = qkv.new_zeros(g.total, qkv.shape[-1]).index_copy_(0, g.dest, qkv)  # zero pads
        outs = []
        for offset, rows, width, mask in g.groups:
            q, k, v = buf[offset:offset + rows * width].view(rows, width, 3, nh, hd).unbind(2)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (b, nh, w, hd)
            out = attention(q, k, v, mask, self.backend, dropout_p=self.dropout_p)
            outs.append(out.transpose(1, 2).reshape(rows * width, nh * hd))  # (b * w, H)
        flat = outs[0] if len(outs) == 1 else torch.cat(outs)  # (total, H)
        return flat.index_select(0, g.dest)


class LengthGroups:
    """Rows of one batch regrouped by length for attention on the unpadded layout.

    A token-budget batch mixes lengths (short rows share it with a few long ones), so one
    (B, L) attention call spends most of its work on padding: for 100 docstring sentences of
    6-135 tokens, about half. Attention only needs each row's own tokens, so rows are sorted
    by length and cut into groups whose longest row is at most `slack` times (or `extra`
    tokens more than) their shortest; each group attends in its own (b, w) call, its rows'
    tokens packed to the left (exact: with padding as the only mask, where a token sits in its
    row does not change attention; positions were added in the embeddings).
    Used only when padding is the only mask: no explicit mask, window, RoPE, relative terms
    or returned probabilities, and not while tracing (the groups are Python-side numbers).

    dest: int64 (T,) row of each packed token in the grouped buffer (total, ...).
    groups: (offset, rows, width, mask) per group; mask bool (rows, 1, 1, width) or None
    when the group's rows have one length.
    """

    def __init__(self, attention_mask: torch.Tensor, keep: torch.Tensor, slack: float = 1.5,
                 extra: int = 8):
        b, n = attention_mask.shape
        lengths = attention_mask.sum(dim=1)  # (B,)
        order = torch.argsort(lengths, stable=True)
        sorted_lengths = lengths[order].tolist()
        base = [0] * b  # first buffer row of each batch row
        self.groups: list[tuple[int, int, int, torch.Tensor | None]] = []
        offset = start = 0
        rows = order.tolist()
        for i in range(1, b + 1):
            first = sorted_lengths[start]
            if i < b and sorted_lengths[i] <= max(first * slack, first + extra):
                continue
            width = max(sorted_lengths[i - 1], 1)
            for slot, r in enumerate(rows[start:i]):
                base[r] = offset + slot * width
            mask = None
            if first != sorted_lengths[i - 1]:
                lens = lengths[order[start:i]]
                mask = (torch.arange(width, device=lens.device) < lens[:, None])[:, None, None]
            self.groups.append((offset, i - start, width, mask))
            offset += (i - start) * width
            start = i
        self.total = offset
        rank = (attention_mask.long().cumsum(1) - 1).reshape(-1)[keep]  # (T,) place in row
        self.dest = torch.as_tensor(base, device=keep.device)[keep // n] + rank  # (T,)


# --- the encoder -----------------------------------------------------------------------------

class Encoder(nn.Module):
    """A BERT-family encoder. See the module docstring; build it from an EncoderConfig.

    backend: the attention kernel, one of unmask.attention.BACKENDS ("sdpa" unless set).
    layout: "padded" (default) or "unpadded" (see the module docstring).
    Both are plain attributes (`encoder.layout = "unpadded"`) and any forward call may override
    them. backend="unpadded", the older spelling, still means layout="unpadded" with "sdpa".
    """

    def __init__(self, config: EncoderConfig, backend: str = "sdpa", layout: str = "padded"):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise TypeError(
                f"Encoder needs an EncoderConfig, got {type(config).__name__}; build one with "
                "unmask.config.preset('tiny', vocab_size=...) or EncoderConfig(...)"
            )
        self.config = config
        self.backend, self.layout = _kernel_and_layout(backend, layout)
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_blocks))
        self.final_norm = _layer_norm(config, config.hidden_size) if config.norm == "pre" else None
        self.relative = RelativeTable(config) if config.relative_attention else None
        self.conv = ConvLayer(config, activation(config.conv_activation)) \
            if config.conv_kernel_size else None
        self.apply(init_weights)

    @property
    def backend(self) -> str:
        """The attention kernel (a name in unmask.attention.BACKENDS)."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:  # "unpadded" (older spelling) also sets the layout
        self._backend, layout = _kernel_and_layout(name, None)
        if layout is not None:
            self.layout = layout

    # --- public --------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        mask: Mask | torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        backend: str | None = None,
        layout: str | None = None,
    ) -> EncoderOutput:
        """Encode a batch.

        input_ids: int64 (B, L) token ids.
        attention_mask: (B, L) bool or 0/1 ints, True/1 = real token (a tokenizer's mask);
            None = no padding. Any padding pattern works (right, left, or holes).
        token_type_ids: int64 (B, L) segment ids; None = zeros. Ignored by models without
            segment embeddings.
        position_ids: int64 (B, L) or (L,), rows of the position table (RoPE angles for
            rotary models), used as given (RoBERTa's offset included). None = 0, 1, 2, ...
            counted over the real tokens of each row, plus config.position_offset, so a
            sentence gets the same positions wherever its padding is.
        mask: an extra boolean mask (unmask.masks.Mask or bool tensor (L, L) or broadcastable
            to (B, nh, L, L)), True = may attend, e.g. masks.causal(L) or masks.window(L, 16);
            combined (AND) with the padding mask and, on local layers, the sliding window.
            A query left with no allowed key outputs zeros from attention.
        output_hidden_states / output_attentions: also return per-layer outputs /
            probabilities (attention probabilities are computed written out, whatever the
            backend).
        backend, layout: override self.backend / self.layout for this call.
        Returns EncoderOutput with last_hidden_state float (B, L, H).
        """
        cfg = self.config
        backend, layout = _kernel_and_layout(backend or self.backend, layout)
        layout = layout or self.layout
        input_ids, attention_mask = self._check_ids(input_ids, attention_mask)
        b, n = input_ids.shape
        device = input_ids.device
        token_type_ids = self._check_types(token_type_ids, input_ids)
        position_ids = self._positions(position_ids, attention_mask, b, n, device)
        explicit = _explicit_mask(mask, b, cfg.num_heads, n, device)

        pad = None
        if attention_mask is not None and not bool(attention_mask.all()):
            pad = attention_mask[:, None, None, :]  # (B, 1, 1, L) keys
        global_mask = _and(pad, explicit)
        local_mask = None
        if cfg.local_window is not None:
            # masks.window's band, from arange so that an ONNX trace keeps the length dynamic
            i = torch.arange(n, device=device)
            band = (i[None, :] - i[:, None]).abs() <= cfg.local_window // 2  # (L, L)
            local_mask = _and(global_mask, band[None, None])
        attend = _Attend(cfg, {False: global_mask, True: local_mask}, self._rope(position_ids),
                         backend, cfg.attention_dropout if self.training else 0.0,
                         [] if output_attentions else None)
        if self.relative is not None:
            index = relative_index(position_ids, cfg.relative_span, cfg.position_buckets,
                                   cfg.max_relative_positions or cfg.max_position_embeddings)
            table = self.relative()  # (R, H)
            if not torch.jit.is_tracing():  # a trace (ONNX export) must not bake in the rows
                # Only the rows some pair uses (about 2L of 2 * span) are projected and scored.
                lo, hi = int(index.min()), int(index.max()) + 1
                table, index = table[lo:hi], index - lo
            attend.relative = (table, index)

        keep = None  # (T,) flat index of the real tokens, on the unpadded layout
        if layout == "unpadded" and pad is not None:
            keep = attention_mask.reshape(-1).nonzero().squeeze(1)
            attend.keep, attend.shape = keep, (b, n)
            if (explicit is None and local_mask is None and attend.rope is None
                    and self.relative is None and not output_attentions
                    and not torch.jit.is_tracing()):
                attend.groups = LengthGroups(attention_mask, keep)
            x = self.embeddings(*(t.expand(b, n).reshape(-1)[keep]
                                  for t in (input_ids, position_ids, token_type_ids)))  # (T, H)
        else:  # without padding the unpadded layout is the padded one, minus the bookkeeping
            x = self.embeddings(input_ids, position_ids.expand(b, n), token_type_ids)  # (B,L,H)

        def restore(h: torch.Tensor) -> torch.Tensor:  # (T, H) -> (B, L, H), zeros at pads
            if keep is None:
                return h
            return h.new_zeros(b * n, h.shape[-1]).index_copy_(0, keep, h).view(b, n, -1)

        hidden = [restore(x)] if output_hidden_states else None
        embedded = x
        for i in range(cfg.num_layers):
            x = self.layers[cfg.block_of(i)](x, partial(attend, layer=i))
            if i == 0 and self.conv is not None:  # DeBERTa-v2: needs whole (B, L, H) rows
                real = (attention_mask if attention_mask is not None
                        else input_ids.new_ones(b, n, dtype=torch.bool)).bool()[..., None]
                x = self.conv(restore(embedded), restore(x), real, position_ids)
                x = x if keep is None else x.view(b * n, -1).index_select(0, keep)
            if self.final_norm is not None and i == cfg.num_layers - 1:
                x = self.final_norm(x)
            if hidden is not None:
                hidden.append(restore(x))
        last = hidden[-1] if hidden is not None else restore(x)
        return EncoderOutput(
            last_hidden_state=last,
            hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(attend.probs) if attend.probs else None,
        )

    # --- helpers -------------------------------------------------------------------------
    def _check_ids(self, input_ids, attention_mask):
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(
                f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}; "
                "tokenize with unmask.tokenizer.Tokenizer.encode_batch(...)"
            )
        if input_ids.dim() != 2:
            raise ValueError(
                f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}; "
                "for one sequence use input_ids[None]"
            )
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
            raise TypeError(f"input_ids must hold integer ids, got dtype {input_ids.dtype}")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids has length 0: nothing to encode")
        # Zero rows (B = 0) is a valid, empty batch: e.g. a torchrun rank's share of the
        # last batch of an epoch. It encodes to (0, L, H).
        lo, hi = (int(input_ids.min()), int(input_ids.max())) if input_ids.numel() else (0, 0)
        if lo < 0 or hi >= self.config.vocab_size:
            raise ValueError(
                f"token id {hi if hi >= self.config.vocab_size else lo} is outside this model's "
                f"vocabulary [0, {self.config.vocab_size}): the tokenizer does not match the "
                "model (see unmask.checkpoints.check_tokenizer)"
            )
        if attention_mask is None:
            return input_ids, None
        attention_mask = torch.as_tensor(attention_mask)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids "
                f"{tuple(input_ids.shape)}; pass the (B, L) 1/0 mask the tokenizer returns "
                "(for extra attention patterns use mask=...)"
            )
        if attention_mask.dtype != torch.bool:
            if attention_mask.is_floating_point() and bool((attention_mask < 0).any()):
                raise ValueError(
                    "attention_mask looks additive (0 / -inf); pass the tokenizer's 1/0 mask, "
                    "or a boolean mask=... (unmask.masks.from_hf converts additive masks)"
                )
            if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
                raise ValueError("attention_mask must hold only 1 (token) and 0 (padding)")
            attention_mask = attention_mask != 0
        return input_ids, attention_mask.to(input_ids.device)

    def _check_types(self, token_type_ids, input_ids):
        # Models without segment embeddings ignore segments, as transformers does (DeBERTa-v3's
        # tokenizer gives a pair's second segment type 1 though the model has no table).
        if token_type_ids is None or not self.config.type_vocab_size:
            return torch.zeros_like(input_ids)
        token_type_ids = torch.as_tensor(token_type_ids)
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids has shape {tuple(token_type_ids.shape)} but input_ids "
                f"{tuple(input_ids.shape)}"
            )
        limit = self.config.type_vocab_size
        if bool((token_type_ids < 0).any()) or int(token_type_ids.max()) >= limit:
            raise ValueError(f"token_type_ids hold {int(token_type_ids.max())}, but this model "
                             f"has {limit} segment type(s): ids must lie in [0, {limit})")
        return token_type_ids.to(input_ids.device)

    def _positions(self, position_ids, attention_mask, b, n, device):
        cfg = self.config
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(n, device=device)[None]  # (1, L)
            else:  # 0, 1, 2, ... over real tokens: padding anywhere leaves positions unchanged
                position_ids = (attention_mask.long().cumsum(1) - 1).clamp_(min=0)  # (B, L)
            position_ids = position_ids + cfg.position_offset
        else:
            position_ids = torch.as_tensor(position_ids)
            if position_ids.dim() == 1:
                position_ids = position_ids[None]
            if position_ids.dim() != 2 or position_ids.shape[1] != n or \
                    position_ids.shape[0] not in (1, b):
                raise ValueError(
                    f"position_ids must be (B, L) or (L,) matching input_ids {(b, n)}, got "
                    f"{tuple(position_ids.shape)}"
                )
            position_ids = position_ids.to(device)
        if cfg.position == "absolute" and position_ids.numel() and \
                int(position_ids.max()) >= cfg.max_position_embeddings:
            raise ValueError(
                f"position {int(position_ids.max())} is beyond this model's "
                f"max_position_embeddings={cfg.max_position_embeddings}: sequences can hold at "
                f"most {cfg.max_position_embeddings - cfg.position_offset} tokens; truncate "
                f"(tokenizer max_length=...)"
            )
        return position_ids

    def _rope(self, positions: torch.Tensor):
        """{theta: (cos, sin) (B|1, L, 1, hd)} for positions (B|1, L), or None (absolute)."""
        cfg = self.config
        if cfg.position != "rotary":
            return None
        return {theta: tuple(t.unsqueeze(2) for t in rope_tables(positions, cfg.head_dim, theta))
                for theta in {cfg.rope_theta_of(i) for i in range(cfg.num_layers)}}


def _kernel_and_layout(backend: str, layout: str | None) -> tuple[str, str | None]:
    """Check the names; the older backend="unpadded" means layout="unpadded" on "sdpa"."""
    if backend == "unpadded":
        backend, layout = "sdpa", "unpadded"
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)} (the layout is "
            f"a separate setting: layout='padded' or 'unpadded')"
        )
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return backend, layout


def _explicit_mask(mask, b: int, heads: int, n: int, device) -> torch.Tensor | None:
    """mask argument -> bool (B|1, nh|1, L, L) on device, or None."""
    allowed = resolve(mask, (b, heads, n, n), device, what="mask")
    if allowed is not None and tuple(allowed.shape[2:]) != (n, n):  # no query-broadcast masks
        raise ValueError(
            f"mask must cover every (query, key) pair, shaped (B|1, nh|1, {n}, {n}) or "
            f"({n}, {n}); got {tuple(allowed.shape)}. Build one with unmask.masks, e.g. "
            f"masks.causal({n})"
        )
    return allowed


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) weights, zero biases, unit LayerNorms.

    Apply with `model.apply(init_weights)`; the padding row of an embedding starts at zero.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, std)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm) and module.weight is not None:
        nn.init.ones_(module.weight)
    if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
        nn.init.zeros_(module.bias)


__all__ = [
    "ENCODER_BACKENDS",
    "LAYOUTS",
    "MLP",
    "Block",
    "Embeddings",
    "Encoder",
    "EncoderOutput",
    "LengthGroups",
    "SelfAttention",
    "activation",
    "apply_rope",
    "init_weights",
    "rope_tables",
]
