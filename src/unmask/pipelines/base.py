"""What every pipeline shares: a checkpoint with its tokenizer, and a fast batch runner.

Axes: N rows (texts, or windows of texts), B rows in one batch, L their padded length.

`run` sorts rows by length and cuts them into batches by a token budget (B x L <=
batch_tokens), so a batch holds little padding; the encoder runs on the unpadded layout
(unmask.model.LengthGroups); on CPU its linear layers run as oneDNN fused linears (FusedLinear);
results go back in input order.

Precision (`dtype`; speed and accuracy measured in benchmarks/RESULTS.md):
  "float32"   exact: the same numbers as transformers / sentence-transformers (1e-5).
  "bfloat16"  bf16 weights and activations: faster where the hardware multiplies bf16
              natively (CPUs with AVX-512 BF16 or AMX, recent GPUs); elsewhere PyTorch emulates
              it, much slower than float32, and asking for it warns.
  "int8"      (CPU) dynamic quantisation of the encoder's linear layers (Int8Linear); heads
              (classifier, MLM decoder) stay float32. Faster than float32, approximate.
  "auto"      (default) float32 on CPUs; bfloat16 on GPUs that support it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.batching import Batch, padded_batches
from unmask.checkpoints import load, resolve
from unmask.hardware import cpu_has_int8_dot, fast_bf16
from unmask.model import activation
from unmask.tokenizer import Tokenizer

DTYPES = ("auto", "float32", "bfloat16", "int8")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.float32}
# Measured with an all-MiniLM-L6-v2 pipeline on a 2-core AVX2 CPU: 7.1 vs 39.1 sentences/s.
EMULATED_BF16_SLOWDOWN = 5
_warned_bf16: set[str] = set()


def resolve_dtype(dtype: str, device: str | torch.device = "cpu", quantize: bool = False) -> str:
    """The precision a pipeline runs in: "float32", "bfloat16" or "int8" (see the module doc).

    dtype: one of DTYPES. quantize: the older spelling of dtype="int8".
    Warns (once per device type) when bfloat16 is asked for where it is emulated.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    kind = torch.device(device).type
    if quantize:
        if dtype not in ("auto", "int8"):
            raise ValueError(f"quantize=True means dtype='int8'; it cannot be combined with "
                             f"dtype={dtype!r}")
        dtype = "int8"
    if dtype == "auto":
        return "bfloat16" if kind != "cpu" and fast_bf16(device) else "float32"
    if dtype == "int8" and kind != "cpu":
        raise ValueError(f"int8 dynamic quantisation runs on CPU only, not on {device!r}; use "
                         "dtype='bfloat16' on GPUs")
    if dtype == "bfloat16" and not fast_bf16(device) and kind not in _warned_bf16:
        _warned_bf16.add(kind)
        what = ("this CPU has no bfloat16 instructions (AVX-512 BF16 / AMX)" if kind == "cpu"
                else f"{device} does not support bfloat16 natively")
        warnings.warn(f"dtype='bfloat16': {what}, so PyTorch emulates it, about "
                      f"{EMULATED_BF16_SLOWDOWN}x slower than float32 (measured); use "
                      "dtype='float32' (exact) or 'int8' (faster, approximate)",
                      RuntimeWarning, stacklevel=3)
    return dtype


class Int8Linear(nn.Module):
    """An nn.Linear run as a dynamically quantised int8 matmul (fbgemm), x: (..., in) float32
    -> (..., out) float32.

    Weights: symmetric int8, one scale per output channel. Activations: uint8 with one scale and
    zero point per call, from the input's range, using all 8 bits. torch's own dynamic Linear
    passes reduce_range=True (7-bit activations), which is what cost most of int8's accuracy
    (benchmarks/RESULTS.md, "int8 accuracy"). reduce_range exists because AVX2 without VNNI
    sums pairs of u8 x s8 products in int16 (vpmaddubsw) and saturates at 255 * 127 * 2; here,
    on such CPUs, the weights give up the bit instead (-64..63: 255 * 63 * 2 fits int16), as
    ONNX Runtime does; CPUs with VNNI (int32 dot products) keep 8 bits on both sides.
    """

    def __init__(self, linear: nn.Linear, weight_bits: int | None = None):
        super().__init__()
        bits = weight_bits or (8 if cpu_has_int8_dot() else 7)
        top = 2 ** (bits - 1) - 1  # 127, or 63
        w = linear.weight.detach().float()  # (out, in)
        scale = (w.abs().amax(dim=1).clamp_min(1e-12) / top).double()  # (out,)
        with warnings.catch_warnings():  # quantized tensors are deprecated in favour of torchao
            warnings.simplefilter("ignore")
            qw = torch.quantize_per_channel(w, scale, torch.zeros_like(scale, dtype=torch.long),
                                            0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack(qw, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self.packed, reduce_range=False)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_bits={self.weight_bits}, activations=8-bit dynamic per call")


def quantize_int8(model: nn.Module) -> nn.Module:
    """model with every nn.Linear of its encoder replaced, in place, by an Int8Linear.

    Heads stay float32: they are small, or (the MLM decoder) tied to the embeddings and run
    only at the masked positions. Returns model.
    """
    for module in list(model.encoder.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    return model


# Activations oneDNN applies inside a fused linear: unmask.model's names -> (op, algorithm).
_FUSABLE = {"gelu": ("gelu", "none"), "gelu_tanh": ("gelu", "tanh"), "gelu_new": ("gelu", "tanh"),
            "relu": ("relu", "")}


@functools.cache
def onednn_linear_works() -> bool:
    """Whether this torch runs oneDNN's fused linear (torch.ops.mkldnn._linear_pointwise, the
    op torch.compile's CPU backend calls) in float32 and bfloat16; False where it is missing."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        for dtype in (torch.float32, torch.bfloat16):
            x, w = torch.ones(2, 3, 4, dtype=dtype), torch.ones(5, 4, dtype=dtype)
            y = torch.ops.mkldnn._linear_pointwise(x, w, torch.zeros(5, dtype=dtype), "gelu",
                                                   [], "none")
            if y.shape != (2, 3, 5) or not bool(torch.isfinite(y).all()):
                return False
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


class FusedLinear(nn.Module):
    """An nn.Linear (and the activation after it) as one oneDNN call, for CPU inference.

    x: (..., in) -> (..., out), float32 or bfloat16 like the weights. The same weights and
    arithmetic as nn.Linear up to float rounding (float32 embeddings stay within 1e-5 of
    sentence-transformers); faster on CPUs because oneDNN adds the bias (and applies GELU)
    inside the matmul instead of in separate passes over the output: see benchmarks/RESULTS.md.
    The op has no backward pass: where autograd would need one (a model passed in and then
    trained), the layer runs as nn.Linear + activation instead, on the same parameters.
    activation: None, or a name in _FUSABLE.
    """

    def __init__(self, linear: nn.Linear, activation: str | None = None):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias  # the same parameters: (out, in)
        self.activation = activation
        self.op, self.algorithm = _FUSABLE[activation] if activation else ("none", "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            y = F.linear(x, self.weight, self.bias)
            return activation(self.activation)(y) if self.activation else y
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.op, [],
                                                  self.algorithm)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}, activation={self.activation}"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def fuse_linears(model: nn.Module) -> nn.Module:
    """model with its encoder's nn.Linear layers, in place, as FusedLinear (CPU inference);
    an MLP's up-projection takes its activation along when oneDNN can apply it (not GeGLU).

    Returns model, unchanged where this torch lacks the op (onednn_linear_works).
    """
    if not onednn_linear_works():
        return model
    for module in list(model.encoder.modules()):
        fused_act = (getattr(module, "gated", True) is False and
                     module.act is not _identity and isinstance(module.up, nn.Linear) and
                     model.config.activation in _FUSABLE)
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                act = model.config.activation if fused_act and child_name == "up" else None
                setattr(module, child_name, FusedLinear(child, act))
        if fused_act:
            module.act = _identity  # applied inside the up-projection now
    return model


def check_int(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """value as an int in [low, high], or ValueError naming the option and the valid range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        limits = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be an int {limits}, got {value!r}")
    return value


class Pipeline:
    """Base of the task pipelines: a model of checkpoint task `task`, its tokenizer, options.

    model: a checkpoint directory / hub id, or an already loaded unmask model (then pass
        tokenizer). tokenizer: an unmask Tokenizer (default: the checkpoint's).
    batch_tokens: padded tokens per forward pass (memory grows with it).
    dtype: "auto" (default), "float32", "bfloat16" or "int8" (see the module docstring).
        quantize=True: the older spelling of dtype="int8".
    device: "cpu", "cuda", ... progress: optional callable(done_rows, total_rows), called
        after each batch (the CLI draws a progress bar with it).
    revision: the branch, tag or commit of a hub id. allow_pickle: permit a checkpoint with only
        pytorch_model.bin (see unmask.checkpoints.read_weights).
    A pipeline may be called from many threads at once (the tokenizer serialises its own
    calls; the model only reads its weights).
    """

    task = "encoder"  # the checkpoint task this pipeline needs (unmask.checkpoints.load)

    def __init__(self, model: str | Path | nn.Module, tokenizer: Tokenizer | None = None, *,
                 batch_tokens: int = 8192, dtype: str = "auto", quantize: bool = False,
                 device: str = "cpu", progress: Callable[[int, int], None] | None = None,
                 revision: str | None = None, allow_pickle: bool = False):
        self.dtype = resolve_dtype(dtype, device, quantize)
        check_int("batch_tokens", batch_tokens)
        if isinstance(model, (str, Path)):
            directory = resolve(model, revision, allow_pickle)
            model = load(directory, task=self.task, allow_pickle=allow_pickle)
            missing = [k for k in model.load_report.missing if not k.startswith("encoder.")]
            if missing and self.task != "embedding":
                raise ValueError(
                    f"{directory} has no trained {self.task} head (missing {missing[:3]}); "
                    f"this pipeline needs a checkpoint fine-tuned for {self.task}"
                )
            tokenizer = tokenizer or Tokenizer.from_pretrained(directory)
        elif tokenizer is None:
            raise ValueError("pass the tokenizer along with an already loaded model")
        elif getattr(model, "task", None) != self.task:
            raise TypeError(f"this pipeline needs a {self.task} model, got "
                            f"{type(model).__name__}")
        model = model.to(device=device, dtype=TORCH_DTYPES[self.dtype]).eval()
        model.encoder.layout = "unpadded"
        if self.dtype == "int8":
            model = quantize_int8(model)
        elif torch.device(device).type == "cpu":
            model = fuse_linears(model)
        self.model, self.tokenizer = model, tokenizer
        self.batch_tokens, self.device, self.progress = batch_tokens, device, progress
        cfg = model.config
        limit = cfg.max_position_embeddings - cfg.position_offset
        self.max_length = min(limit, tokenizer.model_max_length or limit)

    @property
    def config(self):
        return self.model.config

    def run(self, rows: Sequence[Sequence[int]], fn: Callable[[Batch], list[Any]],
            types: Sequence[Sequence[int]] | None = None) -> list[Any]:
        """Apply fn to length-sorted batches of rows; return fn's per-row results in input order.

        fn: Batch -> list of B results (one per row of the batch, in batch order).
        """
        out: list[Any] = [None] * len(rows)
        done = 0
        with torch.inference_mode():
            for batch in padded_batches(rows, self.batch_tokens, self.pad_id, types, self.device):
                for i, result in zip(batch.index, fn(batch)):
                    out[i] = result
                done += len(batch.index)
                if self.progress is not None:
                    self.progress(done, len(rows))
        return out

    def encode(self, batch: Batch) -> torch.Tensor:
        """Last hidden states (B, L, H) of a batch in the model's dtype (zeros at padding)."""
        h = self.model.encoder(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return h.last_hidden_state

    @property
    def pad_id(self) -> int:
        return self.config.pad_token_id

    def tokens(self, texts: Sequence[str] | Sequence[tuple[str, str]], **kwargs):
        """Tokenize without padding (lists of ids, offsets, ...) after checking the texts."""
        check_texts(texts)
        return self.tokenizer.encode_batch(list(texts), padding=False, **kwargs)


class Labelled(Pipeline):
    """A pipeline over a classifier head (Classify, NER): its labels (id2label, else LABEL_i)
    and the stride that long texts' overlapping windows share (default max_length // 4)."""

    def __init__(self, *args, stride: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stride = (self.max_length // 4 if stride is None
                       else check_int("stride", stride, 0, self.max_length - 3))
        m = self.model
        self.labels = [(m.id2label or {}).get(i, f"LABEL_{i}") for i in range(m.num_labels)]


def check_texts(texts: Sequence[Any]) -> None:
    """Refuse empty input with a message that says what is wrong."""
    if len(texts) == 0:
        raise ValueError("no input text given")
    for i, t in enumerate(texts):
        parts = t if isinstance(t, tuple) else (t,)
        for p in parts:
            if not isinstance(p, str):
                raise TypeError(f"input {i} is {type(p).__name__}, expected str")
            if not p.strip():
                raise ValueError(f"input {i} is empty: give some text")


def as_list(inputs: Any) -> tuple[list, bool]:
    """(list of inputs, whether a single input was given) for str or list-of-str arguments."""
    if isinstance(inputs, (str, tuple)):
        return [inputs], True
    return list(inputs), False


def window_mean(rows: torch.Tensor, owner: Sequence[int], n: int,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """float32 (n, D): per input, the mean of its windows' rows (R, D), weighted by weights (R,)
    if given; owner[r] is the input of row r (overflow_to_sample_mapping)."""
    owner = torch.as_tensor(owner, dtype=torch.long)
    weights = torch.ones(len(rows)) if weights is None else weights
    total = torch.zeros(n, rows.shape[1]).index_add_(0, owner, rows * weights[:, None])
    return total / torch.zeros(n).index_add_(0, owner, weights)[:, None]


def centered_window(ids: Sequence[int], pos: int, max_length: int) -> tuple[list[int], int]:
    """A row of at most max_length tokens around position pos of ids, and pos inside it.

    ids: one encoded text, [first special] + content + [last special] (BERT / RoBERTa).
    A short text comes back whole; a long one keeps its specials and the max_length - 2
    content tokens centred on pos, so the token gets context on both sides.
    """
    if len(ids) <= max_length:
        return list(ids), pos
    content = ids[1:-1]
    room = max_length - 2
    a = min(max(pos - 1 - room // 2, 0), len(content) - room)
    return [ids[0], *content[a: a + room], ids[-1]], pos - a
