"""How big a model is: parameters by part, weight memory per dtype, training and activation memory.

Two sources of numbers, kept apart so each can check the other:
  from a config alone (`count_from_config`): the published architectures' formulas, for any
      Hugging Face config.json, no weights needed (the --table rows);
  from a loaded model (`describe`): its parameters by part, the bytes its tensors take in each
      dtype, and the memory one forward (and backward) allocates, measured.

Units: MB = 10^6 bytes (what model cards and file sizes quote), MiB = 2^20 bytes (what `top`,
`free` and torch's memory summaries show); both are printed, since quoting one for the other
is a 4.9% error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Training in fp32 with AdamW: the weight, its gradient, and Adam's two moments (exp_avg and
# exp_avg_sq), 4 bytes each.
TRAIN_BYTES_PER_PARAM = 16
POOLED = ("bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "albert")  # *Model has a pooler


def mib(n: float) -> float:
    return n / 2**20


# === parameters from a config =================================================================

def count_from_config(h: dict) -> dict[str, int]:
    """Parameters by part of a Hugging Face config dict, from its hyper-parameters alone.

    Parts: "embeddings", "encoder", "pooler" (in *Model of BERT, RoBERTa, XLM-R, ALBERT;
    0 elsewhere) and "mlm head" (the masked-LM head with its decoder tied to the word
    embeddings: transform dense + norm + output bias). model_type: bert, roberta,
    xlm-roberta, xlm-roberta-xl (pre-LN: no embedding norm, a final one), electra, albert,
    distilbert, deberta-v2 (v2 and v3). Raises ValueError for other families.
    """
    kind = h.get("model_type")
    known = ("bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "electra", "albert",
             "distilbert", "deberta-v2")
    if kind not in known:
        raise ValueError(f"no parameter formula for model_type {kind!r}; known: "
                         f"{', '.join(known)}")
    if kind == "distilbert":
        hidden, layers, inter, types = h["dim"], h["n_layers"], h["hidden_dim"], 0
    else:
        hidden, layers = h["hidden_size"], h["num_hidden_layers"]
        inter = h["intermediate_size"]
        types = h.get("type_vocab_size", 0 if kind == "deberta-v2" else 2)
    vocab, positions = h["vocab_size"], h.get("max_position_embeddings", 512)
    width = h.get("embedding_size") or hidden

    def linear(i: int, o: int, bias: bool = True) -> int:
        return i * o + (o if bias else 0)

    def norm(d: int) -> int:
        return 2 * d  # LayerNorm weight and bias

    emb = vocab * width + types * width
    if kind != "deberta-v2" or h.get("position_biased_input", True):
        emb += positions * width
    if kind != "xlm-roberta-xl":
        emb += norm(width)
    if width != hidden:  # ELECTRA / ALBERT / DeBERTa project the embeddings to the width
        emb += linear(width, hidden, bias=kind != "deberta-v2")
    block = 4 * linear(hidden, hidden) + linear(hidden, inter) + linear(inter, hidden)
    block += 2 * norm(hidden)
    if kind == "deberta-v2" and h.get("relative_attention") and not h.get("share_att_key"):
        terms = h.get("pos_att_type") or []
        terms = terms.split("|") if isinstance(terms, str) else terms
        block += linear(hidden, hidden) * sum(t in terms for t in ("c2p", "p2c"))
    blocks = h.get("num_hidden_groups", 1) if kind == "albert" else layers
    enc = blocks * block
    if kind == "deberta-v2" and h.get("relative_attention"):
        buckets = h.get("position_buckets", -1)
        span = h.get("max_relative_positions", -1)
        span = span if span > 0 else positions
        enc += (2 * buckets if buckets > 0 else 2 * span) * hidden  # the relative table
        if "layer_norm" in str(h.get("norm_rel_ebd", "none")):
            enc += norm(hidden)
        if h.get("conv_kernel_size", 0):
            enc += h["conv_kernel_size"] * hidden * hidden + hidden + norm(hidden)
    if kind == "xlm-roberta-xl":
        enc += norm(hidden)  # the final LayerNorm of a pre-LN encoder
    out = width if kind in ("albert", "electra") else hidden  # their heads end at the width
    return {"embeddings": emb, "encoder": enc,
            "pooler": linear(hidden, hidden) if kind in POOLED else 0,
            "mlm head": linear(hidden, out) + norm(out) + vocab}


# The rows users know: published hyper-parameters, and the numbers commonly quoted for them.
# unmask_family: whether unmask loads and builds this family (else counted from the formula).
TABLE: list[dict[str, Any]] = [
    {"name": "DistilBERT", "hub_id": "distilbert-base-uncased", "quoted": "66M",
     "config": {"model_type": "distilbert", "vocab_size": 30522, "dim": 768, "n_layers": 6,
                "n_heads": 12, "hidden_dim": 3072, "max_position_embeddings": 512}},
    {"name": "BERT-base", "hub_id": "bert-base-uncased", "quoted": "110M",
     "quoted_size": "440 MB",
     "config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 768,
                "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 512, "type_vocab_size": 2}},
    {"name": "BERT-large", "hub_id": "bert-large-uncased", "quoted": "340M",
     "quoted_size": "1.34 GB",
     "config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 1024,
                "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
                "max_position_embeddings": 512, "type_vocab_size": 2}},
    {"name": "RoBERTa-base", "hub_id": "roberta-base", "quoted": "125M",
     "config": {"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768,
                "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}},
    {"name": "DeBERTa-v3-large", "hub_id": "microsoft/deberta-v3-large", "quoted": "435M",
     "config": {"model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 1024,
                "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
                "max_position_embeddings": 512, "type_vocab_size": 0,
                "relative_attention": True, "position_buckets": 256,
                "max_relative_positions": -1, "norm_rel_ebd": "layer_norm",
                "share_att_key": True, "pos_att_type": "p2c|c2p",
                "position_biased_input": False}},
    {"name": "XLM-R-XL", "hub_id": "facebook/xlm-roberta-xl", "quoted": "3.5B",
     "config": {"model_type": "xlm-roberta-xl", "vocab_size": 250880, "hidden_size": 2560,
                "num_hidden_layers": 36, "num_attention_heads": 32, "intermediate_size": 10240,
                "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}},
]


def _quantity(text: str) -> float:
    """ "110M" -> 1.1e8, "1.34 GB" -> 1.34e9 (decimal units, as quoted)."""
    number, unit = text.replace(" ", "")[:-1], text.replace(" ", "")[-1]
    if unit == "B" and number[-1] in "MG":  # "440 MB", "1.34 GB"
        number, unit = number[:-1], number[-1]
    return float(number) * {"K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}[unit]


def table() -> list[dict[str, Any]]:
    """The TABLE rows with their counts, memory per dtype, and a note on the quoted numbers.

    params: the base model as transformers' AutoModel builds it (embeddings + encoder +
    pooler); with_mlm: plus the masked-LM head. memory_mb / memory_mib: params x bytes.
    """
    from unmask.checkpoints import FAMILIES

    rows = []
    for row in TABLE:
        parts = count_from_config(row["config"])
        base = parts["embeddings"] + parts["encoder"] + parts["pooler"]
        with_mlm = base + parts["mlm head"]
        quoted = _quantity(row["quoted"])
        notes = [f"quoted {row['quoted']}, counted {base / 1e6:,.1f}M (the quote is "
                 f"{(quoted - base) / base:+.1%} off)"
                 + (f", {(base - parts['pooler']) / 1e6:,.1f}M without the pooler"
                    if parts["pooler"] else "")]
        if row.get("quoted_size"):
            size = with_mlm * BYTES["fp32"]
            notes.append(
                f"'{row['quoted_size']}' is the fp32 file with the MLM head in decimal units "
                f"({size / 1e6:,.0f} MB); in binary units it is {mib(size):,.0f} MiB, and the "
                f"base model alone {mib(base * 4):,.0f} MiB")
        if row["config"]["model_type"] not in FAMILIES:
            notes.append("not an unmask family: counted from its config formula only")
        rows.append({
            "name": row["name"], "hub_id": row["hub_id"], "params": base,
            "parts": parts, "with_mlm": with_mlm,
            "memory_mb": {d: base * b / 1e6 for d, b in BYTES.items()},
            "memory_mib": {d: mib(base * b) for d, b in BYTES.items()},
            "train_mib": mib(base * TRAIN_BYTES_PER_PARAM),
            "notes": notes})
    return rows


# === a loaded model ===========================================================================

def parts_of(model: nn.Module) -> dict[str, int]:
    """Parameters of an unmask model by part: "embeddings", "encoder" (blocks, relative table,
    final norm) and "head: <task>"; tied weights counted once (named_parameters dedups)."""
    out: dict[str, int] = {}
    task = getattr(model, "task", "encoder")
    for name, p in model.named_parameters():
        name = name.removeprefix("encoder.") if hasattr(model, "head") else name
        part = (f"head: {task}" if name.startswith("head.") else
                "embeddings" if name.startswith("embeddings.") else "encoder")
        out[part] = out.get(part, 0) + p.numel()
    return out


def tensor_bytes(model: nn.Module) -> int:
    """Bytes held by the model's tensors (parameters, buffers, int8 packed weights and their
    scales), each storage once."""
    seen: dict[int, int] = {}

    def add(t: Any) -> None:
        if isinstance(t, torch.Tensor):
            if t.is_quantized:
                add(t.int_repr())
                if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                    add(t.q_per_channel_scales()), add(t.q_per_channel_zero_points())
                return
            seen[t.untyped_storage().data_ptr() or id(t)] = t.untyped_storage().nbytes()
        elif isinstance(t, (tuple, list)):
            for x in t:
                add(x)

    for value in model.state_dict().values():
        add(value)
    return sum(seen.values())


def measure_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated on the CPU during fn(), above what was live when it started.

    Measured with torch.profiler(profile_memory=True): every allocation and free of the CPU
    allocator during the call, in time order; the peak of their running sum. Counts tensors'
    memory exactly, not the allocator's cache or Python objects.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def activations(model: nn.Module, batch: int, length: int, train: bool) -> dict[str, int]:
    """Memory one forward pass allocates for a (batch, length) input of random token ids
    (fp32, inference mode), and with train=True one training step's forward + backward
    (train mode: dropout masks too), its gradients apart. Bytes."""
    cfg = model.config
    length = min(length, cfg.max_position_embeddings - cfg.position_offset)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(ids, attention_mask=mask)

    out = {"batch": batch, "length": length, "forward": measure_peak(forward)}
    if train:
        model.train()

        def step() -> None:
            result = model(ids, attention_mask=mask)
            value = next(getattr(result, k) for k in ("logits", "start_logits",
                                                      "embeddings", "last_hidden_state")
                         if getattr(result, k, None) is not None)
            value.float().sum().backward()

        out["forward_backward"] = measure_peak(step)
        out["gradients"] = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
        model.zero_grad(set_to_none=True)
        model.eval()
    return out


def describe(name_or_path: str | Path, *, batch: int = 8, length: int = 128,
             train: bool = False, revision: str | None = None,
             allow_pickle: bool = False) -> dict[str, Any]:
    """Everything `unmask info MODEL` prints, as a JSON-able dict.

    name_or_path: a checkpoint directory, hub id, or a config.json (then from the config
    alone: the formula's counts for what its architectures hold, *ForMaskedLM / PreTraining
    with the MLM head, else the base model with its pooler; computed memory, no measurement).
    batch, length: the input of the activation measurement; train: also forward + backward.
    """
    from unmask.checkpoints import CONFIG_NAME, config_from_hf, load, resolve
    from unmask.checkpoints.files import has_weights, read_json

    p = Path(name_or_path).expanduser()
    directory = p.parent if p.is_file() and p.name.endswith(".json") else resolve(
        name_or_path, revision, allow_pickle)
    if p.is_file() or not (has_weights(directory) or (directory / "pytorch_model.bin").is_file()
                           or (directory / "unmask.json").is_file()):
        h = read_json(directory / CONFIG_NAME if not p.is_file() else p)
        parts = count_from_config(h)  # what its architecture holds: *ForMaskedLM, else *Model
        mlm = any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in h.get("architectures")
                  or ())
        parts = {k: v for k, v in parts.items() if v and (k != "mlm head" or mlm)
                 and (k != "pooler" or not mlm)}
        cfg = config_from_hf(h) if h.get("model_type") != "xlm-roberta-xl" else None
        return _summary(str(name_or_path), h.get("model_type"), "config only", parts,
                        cfg.to_dict() if cfg else h, None, None)
    model = load(directory, allow_pickle=allow_pickle)
    parts = parts_of(model)
    measured = {"fp32": tensor_bytes(model),
                "int8": tensor_bytes(_quantize(copy.deepcopy(model)))}  # the copy is freed here
    acts = activations(model, batch, length, train)
    for d in ("bf16", "fp16"):
        measured[d] = tensor_bytes(model.to(TORCH_DTYPES[d]))
    model.to(torch.float32)
    return _summary(str(name_or_path), getattr(model, "hf_model_type", None),
                    type(model).__name__, parts, model.config.to_dict(), measured, acts)


def _quantize(model: nn.Module) -> nn.Module:
    """int8 dynamic quantisation as the pipelines do it (dtype="int8"): the encoder's linear
    layers; a bare Encoder is held as a task model's `.encoder` for that."""
    from unmask.model import Encoder
    from unmask.pipelines.base import quantize_int8

    if isinstance(model, Encoder):
        holder = nn.Module()
        holder.encoder = model
        return quantize_int8(holder.eval()).encoder
    return quantize_int8(model.eval())


def _summary(name, family, architecture, parts, config, measured, acts) -> dict[str, Any]:
    total = sum(parts.values())
    computed = {d: total * b for d, b in BYTES.items()}
    return {"model": name, "family": family, "architecture": architecture, "config": config,
            "parameters": {**parts, "total": total},
            "weights_bytes": {"computed": computed, "measured": measured},
            "training_bytes": total * TRAIN_BYTES_PER_PARAM,
            "activations_bytes": acts}
