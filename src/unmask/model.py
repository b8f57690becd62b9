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

Layouts. A block only ever mixes tokens inside attention; everything else works per token on
(..., H). So the same blocks run on two layouts:
  padded    (B, L, H) with a boolean key-padding mask; backends "eager", "sdpa", "sparse",
            "flex" (see unmask.attention).
  unpadded  backend="unpadded": padding is removed once, before the embeddings, giving packed
            (T, H) tokens; every linear layer, norm and MLP runs on real tokens only; for
            attention alone q/k/v are scattered back into (B, L) for one fused SDPA call
            under the padding mask (CPU has no variable-length kernel); padding is restored
            once after the last block.
Both give the same outputs at real tokens (parity tests in tests/test_model.py). Outputs at
padding positions are unspecified: zeros on the unpadded path, whatever the math gives on the
padded path (Hugging Face does the same).
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
from unmask.dropout import Dropout, dropout
from unmask.masks import Mask, check_broadcast

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


@dataclass
class EncoderOutput:
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

    def __getitem__(self, key: str) -> Any:  # out["last_hidden_state"], as with transformers
        return getattr(self, key)


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
    """Fused q/k/v projection H -> 3H, and the output projection H -> H.

    The token mixing itself lives in the layout (padded or packed), passed to Block.forward.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.attention_bias)


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
            h = self.act(a) * gate
        else:
            h = self.act(h)
        return self.down(h)


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

    def forward(self, x: torch.Tensor, attend: Callable[[torch.Tensor], torch.Tensor]):
        """x: (B, L, H) or (T, H). attend: fused qkv (..., 3H) -> mixed values (..., H)."""
        if self.pre_norm:
            x = x + self.drop(self.attn.out(attend(self.attn.qkv(self.attn_norm(x)))))
            return x + self.drop(self.mlp(self.mlp_norm(x)))
        x = self.attn_norm(x + self.drop(self.attn.out(attend(self.attn.qkv(x)))))
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


# --- attention with dropout ------------------------------------------------------------------

def _attend(q, k, v, mask, backend: str, dropout_p: float) -> torch.Tensor:
    """unmask.attention, plus attention-probability dropout while training.

    unmask.attention has no dropout, so training with attention_dropout > 0 runs torch's
    SDPA (with the same empty-row guard) whatever the backend; eval uses the chosen backend.
    On the CPU, training at short lengths runs written-out attention instead (see
    _attention_for_training).
    """
    if (q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad
            and backend in ("sdpa", "eager") and q.shape[-2] <= 512):
        return _attention_for_training(q, k, v, mask, dropout_p)
    if dropout_p == 0.0:
        return attention(q, k, v, mask, backend)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    has_key = mask.any(dim=-1, keepdim=True)  # (..., Q, 1); empty rows would give NaN
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key, dropout_p=dropout_p)
    return out.masked_fill(~has_key, 0.0)


def _attention_for_training(q, k, v, mask, dropout_p: float) -> torch.Tensor:
    """Written-out attention with unmask.dropout on the probabilities, for CPU training.

    q, k, v: (B, nh, L, hd); mask: bool broadcastable to (B, nh, L, L) or None.
    On two CPU cores at L=128 (BERT-mini, bf16), forward + backward took 17 ms against 47 ms
    for SDPA's flash kernel (and 60 ms for SDPA with dropout, which draws its bits with
    bernoulli_); at L=512 still 47 ms against 63 ms. Rows with no allowed key output zeros.
    """
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, nh, Q, K)
    has_key = None
    if mask is not None:
        has_key = mask.any(dim=-1, keepdim=True)  # (..., Q, 1)
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=q.device)
        scores = scores + bias.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    probs = dropout(torch.softmax(scores, dim=-1), dropout_p)
    out = probs @ v  # (B, nh, Q, hd)
    if has_key is not None and not bool(has_key.all()):
        out = out.masked_fill(~has_key, 0.0)
    return out


def _attention_probs(q, k, v, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Written-out attention that also returns the probabilities (B, nh, Q, K)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, Q, K)
    if mask is not None:
        has_key = mask.any(dim=-1, keepdim=True)
        scores = scores.masked_fill(~mask, float("-inf")).masked_fill(~has_key, 0.0)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if mask is not None:
        probs = probs.masked_fill(~has_key, 0.0)
    probs = probs.to(q.dtype)
    return probs @ v, probs


def _and(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _window(n: int, size: int, device) -> torch.Tensor:
    """(1, 1, n, n) bool: |i - j| <= size // 2 (ModernBERT's local attention)."""
    i = torch.arange(n, device=device)
    return ((i[None, :] - i[:, None]).abs() <= size // 2)[None, None]


# --- layouts ---------------------------------------------------------------------------------

class _Padded:
    """Attention on padded (B, L, 3H) projections under per-kind boolean masks."""

    def __init__(self, cfg, masks, rope, backend, dropout_p, keep_probs):
        self.cfg, self.masks, self.rope = cfg, masks, rope
        self.backend, self.dropout_p = backend, dropout_p
        self.probs: list[torch.Tensor] | None = [] if keep_probs else None

    def attend(self, qkv: torch.Tensor, layer: int) -> torch.Tensor:
        b, n, _ = qkv.shape
        nh, hd = self.cfg.num_heads, self.cfg.head_dim
        q, k, v = qkv.view(b, n, 3, nh, hd).unbind(2)  # (B, L, nh, hd) each
        if self.rope is not None:
            cos, sin = self.rope[self.cfg.rope_theta_of(layer)]  # (B|1, L, 1, hd)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, nh, L, hd)
        mask = self.masks[self.cfg.is_local(layer)]
        if self.probs is not None:
            out, probs = _attention_probs(q, k, v, mask)
            self.probs.append(probs)
        else:
            out = _attend(q, k, v, mask, self.backend, self.dropout_p)  # (B, nh, L, hd)
        return out.transpose(1, 2).reshape(b, n, nh * hd)  # (B, L, H)


class _Packed:
    """Attention for packed (T, 3H) projections: scattered into the padded (B, L) layout for
    one fused SDPA call under the key-padding mask, then the T real rows are gathered back.

    keep: (T,) flat index (row * L + column) of each real token; masks: {is_local: bool mask
    broadcastable to (B, nh, L, L) or None}, padding already folded in, as for _Padded.
    Only attention sees padding: every linear layer, norm and MLP runs on the T real tokens.
    (One SDPA call per distinct length, with no mask at all, was tried first: on CPU it was
    ~4x slower in attention, as a batch of varied lengths makes many small kernel calls.)
    """

    def __init__(self, cfg, keep, b, n, masks, rope, dropout_p):
        self.cfg, self.keep, self.b, self.n = cfg, keep, b, n
        self.masks, self.rope, self.dropout_p = masks, rope, dropout_p

    def attend(self, qkv: torch.Tensor, layer: int) -> torch.Tensor:
        t = qkv.shape[0]
        nh, hd = self.cfg.num_heads, self.cfg.head_dim
        qkv = qkv.view(t, 3, nh, hd)
        if self.rope is not None:
            cos, sin = self.rope[self.cfg.rope_theta_of(layer)]  # (T, 1, hd)
            q, k, v = qkv.unbind(1)
            qkv = torch.stack((apply_rope(q, cos, sin), apply_rope(k, cos, sin), v), dim=1)
        # A fresh buffer per layer (a reused one would break autograd); zeros at padding.
        padded = qkv.new_zeros(self.b * self.n, 3, nh, hd).index_copy_(0, self.keep, qkv)
        # (B, L, 3, nh, hd) -> 3 x (B, nh, L, hd), views
        q, k, v = padded.view(self.b, self.n, 3, nh, hd).permute(2, 0, 3, 1, 4).unbind(0)
        mask = self.masks[self.cfg.is_local(layer)]
        out = _attend(q, k, v, mask, "sdpa", self.dropout_p)  # (B, nh, L, hd)
        out = out.transpose(1, 2).reshape(self.b * self.n, nh * hd)  # (B * L, H)
        return out.index_select(0, self.keep)  # (T, H)


# --- the encoder -----------------------------------------------------------------------------

class Encoder(nn.Module):
    """A BERT-family encoder. See the module docstring; build it from an EncoderConfig.

    backend: default attention backend, one of ENCODER_BACKENDS ("sdpa" unless set; any
        forward call may override it). Change it later with `encoder.backend = "unpadded"`.
    """

    def __init__(self, config: EncoderConfig, backend: str = "sdpa"):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise TypeError(
                f"Encoder needs an EncoderConfig, got {type(config).__name__}; build one with "
                "unmask.config.preset('tiny', vocab_size=...) or EncoderConfig(...)"
            )
        self.config = config
        self.backend = _check_backend(backend)
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_blocks))
        self.final_norm = _layer_norm(config, config.hidden_size) if config.norm == "pre" else None
        self.apply(init_weights)

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
    ) -> EncoderOutput:
        """Encode a batch.

        input_ids: int64 (B, L) token ids.
        attention_mask: (B, L) bool or 0/1 ints, True/1 = real token (a tokenizer's mask);
            None = no padding. Any padding pattern works (right, left, or holes).
        token_type_ids: int64 (B, L) segment ids; None = zeros. Ignored by models without
            segment embeddings as long as they are all 0.
        position_ids: int64 (B, L) or (L,), rows of the position table (RoPE angles for
            rotary models), used as given (RoBERTa's offset included). None = 0, 1, 2, ...
            counted over the real tokens of each row, plus config.position_offset, so a
            sentence gets the same positions wherever its padding is.
        mask: an extra boolean mask (unmask.masks.Mask or bool tensor (L, L) or broadcastable
            to (B, nh, L, L)), True = may attend, e.g. masks.causal(L) or masks.window(L, 16);
            combined (AND) with the padding mask and, on local layers, the sliding window.
            A query left with no allowed key outputs zeros from attention.
        output_hidden_states / output_attentions: also return per-layer outputs /
            probabilities (attention probabilities are computed written-out, on the padded
            layout, whatever the backend).
        backend: override self.backend for this call.
        Returns EncoderOutput with last_hidden_state float (B, L, H).
        """
        cfg = self.config
        backend = _check_backend(backend or self.backend)
        input_ids, attention_mask = self._check_ids(input_ids, attention_mask)
        b, n = input_ids.shape
        device = input_ids.device
        token_type_ids = self._check_types(token_type_ids, input_ids)
        position_ids = self._positions(position_ids, attention_mask, b, n, device)
        explicit = _explicit_mask(mask, b, cfg.num_heads, n, device)
        if backend == "unpadded":
            if output_attentions or (attention_mask is None and explicit is None):
                # Probabilities come from the padded layout; without padding it is the same
                # computation as the unpadded one, minus the bookkeeping.
                backend = "sdpa"
            elif attention_mask is None:
                attention_mask = torch.ones(b, n, dtype=torch.bool, device=device)
        dropout_p = cfg.attention_dropout if self.training else 0.0

        pad = None
        if attention_mask is not None and not bool(attention_mask.all()):
            pad = attention_mask[:, None, None, :]  # (B, 1, 1, L) keys
        global_mask = _and(pad, explicit)
        local_mask = (
            _and(global_mask, _window(n, cfg.local_window, device))
            if cfg.local_window is not None else None
        )
        masks = {False: global_mask, True: local_mask}

        if backend == "unpadded":
            keep = attention_mask.reshape(-1).nonzero().squeeze(1)  # (T,) flat index of tokens
            x = self.embeddings(
                input_ids.reshape(-1)[keep],
                position_ids.expand(b, n).reshape(-1)[keep],
                token_type_ids.reshape(-1)[keep],
            )  # (T, H)
            rope = self._rope(position_ids.expand(b, n).reshape(-1)[keep], 1)  # (T, 1, hd)
            layout = _Packed(cfg, keep, b, n, masks, rope, dropout_p)

            def restore(h: torch.Tensor) -> torch.Tensor:  # (T, H) -> (B, L, H), zeros at pads
                out = h.new_zeros(b * n, h.shape[-1])
                out[keep] = h
                return out.view(b, n, h.shape[-1])
        else:
            x = self.embeddings(input_ids, position_ids.expand(b, n), token_type_ids)  # (B,L,H)
            rope = self._rope(position_ids, 2)  # (B|1, L, 1, hd)
            layout = _Padded(cfg, masks, rope, backend, dropout_p, output_attentions)

            def restore(h: torch.Tensor) -> torch.Tensor:
                return h

        hidden = [restore(x)] if output_hidden_states else None
        for i in range(cfg.num_layers):
            x = self.layers[cfg.block_of(i)](x, partial(layout.attend, layer=i))
            if self.final_norm is not None and i == cfg.num_layers - 1:
                x = self.final_norm(x)
            if hidden is not None:
                hidden.append(restore(x))
        probs = getattr(layout, "probs", None)
        last = hidden[-1] if hidden is not None else restore(x)
        return EncoderOutput(
            last_hidden_state=last,
            hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(probs) if probs else None,
        )

    def num_parameters(self) -> int:
        """Number of weights (shared blocks counted once)."""
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs) -> Encoder:
        """Load an encoder (no head) from a directory or hub id: unmask.checkpoints.load."""
        from unmask.checkpoints import load

        return load(name_or_path, task="encoder", **kwargs)

    def save_pretrained(self, directory, **kwargs) -> None:
        """Save to `directory`: unmask.checkpoints.save (format="unmask" or "hf")."""
        from unmask.checkpoints import save

        save(self, directory, **kwargs)

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
        if not isinstance(attention_mask, torch.Tensor):
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
        if token_type_ids is None:
            return torch.zeros_like(input_ids)
        if not isinstance(token_type_ids, torch.Tensor):
            token_type_ids = torch.as_tensor(token_type_ids)
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids has shape {tuple(token_type_ids.shape)} but input_ids "
                f"{tuple(input_ids.shape)}"
            )
        limit = max(self.config.type_vocab_size, 1)
        if bool((token_type_ids < 0).any()) or int(token_type_ids.max()) >= limit:
            what = ("has no segment embeddings (type_vocab_size=0): pass zeros or None"
                    if not self.config.type_vocab_size
                    else f"has {limit} segment type(s): ids must lie in [0, {limit})")
            raise ValueError(f"token_type_ids hold {int(token_type_ids.max())}, but this model "
                             f"{what}")
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
            if not isinstance(position_ids, torch.Tensor):
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

    def _rope(self, positions: torch.Tensor, head_axis: int):
        """{theta: (cos, sin)} with a head axis inserted at `head_axis`, or None (absolute)."""
        cfg = self.config
        if cfg.position != "rotary":
            return None
        thetas = {cfg.rope_theta_of(i) for i in range(cfg.num_layers)}
        tables = {}
        for theta in thetas:
            cos, sin = rope_tables(positions, cfg.head_dim, theta)
            tables[theta] = (cos.unsqueeze(head_axis), sin.unsqueeze(head_axis))
        return tables


def _check_backend(backend: str) -> str:
    if backend not in ENCODER_BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r}; choose one of {', '.join(ENCODER_BACKENDS)}"
        )
    return backend


def _explicit_mask(mask, b: int, heads: int, n: int, device) -> torch.Tensor | None:
    """mask argument -> bool (B|1, nh|1, L, L) on device, or None."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be boolean (True = may attend), got {mask.dtype}; the (B, L) padding "
            "mask goes in attention_mask=..., additive masks through unmask.masks.from_hf(...)"
        )
    allowed = Mask(mask).allowed
    if tuple(allowed.shape[2:]) != (n, n):  # a query-broadcast (.., 1, L) mask is refused
        raise ValueError(
            f"mask must cover every (query, key) pair, shaped (B|1, nh|1, {n}, {n}) or "
            f"({n}, {n}); got {tuple(allowed.shape)}. Build one with unmask.masks, e.g. "
            f"masks.causal({n})"
        )
    check_broadcast(allowed.shape, (b, heads, n, n))
    return allowed.to(device)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) weights, zero biases, unit LayerNorms.

    Apply with `model.apply(init_weights)`; the padding row of an embedding starts at zero.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


__all__ = [
    "ENCODER_BACKENDS",
    "MLP",
    "Block",
    "Embeddings",
    "Encoder",
    "EncoderOutput",
    "SelfAttention",
    "activation",
    "apply_rope",
    "init_weights",
    "rope_tables",
]
