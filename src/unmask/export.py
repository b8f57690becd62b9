"""Export a model to ONNX, the graph format ONNX Runtime (and most serving engines) run.

    unmask export onnx MODEL --task embed --out DIR [--int8]
    >>> from unmask.export import export_onnx
    >>> export_onnx("path/to/minilm", "embed", "minilm-onnx")

DIR gets model.onnx (model.int8.onnx too with int8=True), the tokenizer files and
unmask_export.json (task, outputs, pooling, labels) so `pipeline("embed", DIR, engine="onnx")`
can run it with the same API. Every graph takes int64 inputs with dynamic batch and length
axes, B rows of L tokens, padded on the right:
  input_ids, attention_mask (1 = token, 0 = padding), token_type_ids (dropped from the graph by
  the exporter when the model has no segment embeddings, e.g. RoBERTa / ModernBERT)
and returns, all float32:
  embed      pooled (B, H): the checkpoint's pooling (mean / cls / max) over real tokens;
             embeddings (B, H): the same, L2-normalised when the checkpoint says so
             (sentence-transformers' output: use this one)
  classify   logits (B, C)         ner   logits (B, L, C)
  fill-mask  logits (B, L, V)      qa    start_logits (B, L), end_logits (B, L)

What runs: the padded layout on the "sdpa" kernel (the unpadded layout gathers and scatters
by data-dependent indices, which ONNX graphs handle poorly), traced by torch.onnx.export's
TorchScript exporter (dynamo=False): torch.export refuses the encoder, whose input checks
branch on tensor values (bool(attention_mask.all())). Tracing records the branch taken for
the example batch, so the example has padding and the graph always applies the padding mask
(a batch without padding gives the same numbers through it). Not traced: the guard for a row
with no real token at all, which the pipelines never send. Any family the encoder builds
exports, as the wrapper below only calls the model's own encoder and head.

int8: a second file, from quantize_onnx (needs the onnxruntime package).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unmask.heads import pool

TASKS = {"embed": "embedding", "classify": "sequence_classification",
         "ner": "token_classification", "fill-mask": "masked_lm", "qa": "question_answering"}
OUTPUTS = {"embed": ("pooled", "embeddings"), "classify": ("logits",), "ner": ("logits",),
           "fill-mask": ("logits",), "qa": ("start_logits", "end_logits")}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
META = "unmask_export.json"
OPSET = 17


class _Graph(nn.Module):
    """The exported computation: encoder (padded, SDPA) + the task's head -> a tuple."""

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, input_ids, attention_mask, token_type_ids) -> tuple[torch.Tensor, ...]:
        m = self.model
        hidden = m.encoder(input_ids, attention_mask, token_type_ids, backend="sdpa",
                           layout="padded").last_hidden_state  # (B, L, H)
        if self.task == "embed":
            pooled = pool(hidden, attention_mask, m.pooling)  # (B, H)
            return pooled, F.normalize(pooled, dim=-1) if m.normalize else pooled
        if self.task == "classify":
            return (m.head(hidden, attention_mask),)  # (B, C)
        if self.task == "fill-mask":
            return (m.head(hidden, m.encoder.embeddings.word.weight),)  # (B, L, V)
        out = m.head(hidden)  # ner: (B, L, C); qa: ((B, L), (B, L))
        return tuple(out) if isinstance(out, tuple) else (out,)


def export_onnx(model: str | Path | nn.Module, task: str, out: str | Path, tokenizer=None, *,
                int8: bool = False, opset: int = OPSET) -> Path:
    """Write DIR/model.onnx (and model.int8.onnx with int8) for `task`; returns DIR.

    model: a checkpoint directory / hub id, or a loaded unmask model of the task (then pass
    tokenizer, an unmask Tokenizer, so DIR holds the tokenizer too).
    """
    from unmask.checkpoints import load, resolve
    from unmask.tokenizer import Tokenizer

    if task not in TASKS:
        raise ValueError(f"unknown export task {task!r}; choose one of {', '.join(TASKS)}")
    if isinstance(model, (str, Path)):
        directory = resolve(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "head newly initialised": stated in the metadata
            model = load(directory, task=TASKS[task])
        tokenizer = tokenizer or Tokenizer.from_pretrained(directory)
    elif getattr(model, "task", None) != TASKS[task]:
        raise TypeError(f"--task {task} needs a {TASKS[task]} model, got {type(model).__name__}")
    model = model.float().eval()
    out = Path(out)
    if out.is_file():
        raise FileExistsError(f"{out} is a file; --out needs a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    cfg = model.config
    # Two rows, the second padded: the traced graph keeps the padding mask (module docstring).
    ids = torch.full((2, 8), cfg.pad_token_id, dtype=torch.long)
    ids[:, 1:7] = torch.arange(1, 7) % cfg.vocab_size
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    types = torch.zeros(2, 8, dtype=torch.long)
    names = OUTPUTS[task]
    axes = {name: {0: "batch", 1: "length"} for name in INPUTS}
    axes.update({name: {0: "batch"} if task in ("embed", "classify") else
                 {0: "batch", 1: "length"} for name in names})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings for the branches explained above
        # The wrapper in eval mode: the exporter restores the wrapper's mode afterwards, and a
        # fresh module's is training, which would leave the caller's model training too.
        torch.onnx.export(_Graph(model, task).eval(), (ids, mask, types), str(path), dynamo=False,
                          input_names=list(INPUTS), output_names=list(names),
                          dynamic_axes=axes, opset_version=opset)
    if tokenizer is not None:
        tokenizer.save(out)
    meta: dict[str, Any] = {
        "task": task, "outputs": list(names), "opset": opset,
        "pad_token_id": cfg.pad_token_id,
        "max_length": cfg.max_position_embeddings - cfg.position_offset,
    }
    if task == "embed":
        meta.update(pooling=model.pooling, normalize=model.normalize,
                    max_length=min(meta["max_length"], model.max_length or meta["max_length"]))
    if task in ("classify", "ner"):
        meta["id2label"] = {str(i): v for i, v in (model.id2label or {}).items()}
    (out / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if int8:
        quantize_onnx(path, out / "model.int8.onnx")
    return out


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("this needs ONNX Runtime: pip install onnxruntime") from None
    return onnxruntime


def quantize_onnx(src: str | Path, dst: str | Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of src (per-channel weights) into dst."""
    _onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    return Path(dst)


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime.InferenceSession on the CPU for the graph at path."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The unmask_export.json of an export directory (OSError naming the file when missing)."""
    path = Path(directory) / META
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: engine='onnx' needs a directory written by "
                                "`unmask export onnx` (model.onnx + unmask_export.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def run_session(sess, input_ids, attention_mask, token_type_ids=None) -> dict[str, Any]:
    """Run a session on int64 (B, L) tensors or arrays; {output name: numpy array}."""
    feed = {"input_ids": input_ids, "attention_mask": attention_mask,
            "token_type_ids": token_type_ids if token_type_ids is not None else
            torch.zeros_like(torch.as_tensor(input_ids))}
    wanted = {i.name for i in sess.get_inputs()}
    feed = {k: torch.as_tensor(v).to(torch.long).numpy() for k, v in feed.items() if k in wanted}
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


__all__ = ["INPUTS", "OUTPUTS", "TASKS", "export_onnx", "quantize_onnx", "read_meta",
           "run_session", "session"]
