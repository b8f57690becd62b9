"""What every pipeline shares: a checkpoint with its tokenizer, and a fast batch runner.

Axes: N rows (texts, or windows of texts), B rows in one batch, L their padded length.

Throughput by design (see `run`): rows are sorted by length and cut into batches by a token
budget (B x L <= batch_tokens), so a batch holds rows of similar length and little padding;
the encoder runs unpadded (padding is removed before the first layer); results go back to the
caller in input order. Optional bfloat16 weights, or int8 dynamic quantisation of the linear
layers (CPU), trade a little accuracy for speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmask.batching import Batch, batches
from unmask.checkpoints import load, resolve
from unmask.tokenizer import Tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class Pipeline:
    """Base of the task pipelines: a model of checkpoint task `task`, its tokenizer, options.

    model: a checkpoint directory / hub id, or an already loaded unmask model (then pass
        tokenizer). tokenizer: an unmask Tokenizer (default: the checkpoint's).
    batch_tokens: padded tokens per forward pass (memory grows with it).
    dtype: "float32" (default) or "bfloat16". quantize: int8 dynamic quantisation of every
        nn.Linear (CPU only; a few percent of accuracy for speed on small batches).
    device: "cpu", "cuda", ... progress: optional callable(done_rows, total_rows), called
        after each batch (the CLI draws a progress bar with it).
    """

    task = "encoder"  # the checkpoint task this pipeline needs (unmask.checkpoints.load)

    def __init__(self, model: str | Path | nn.Module, tokenizer: Tokenizer | None = None, *,
                 batch_tokens: int = 8192, dtype: str = "float32", quantize: bool = False,
                 device: str = "cpu", progress: Callable[[int, int], None] | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if not isinstance(batch_tokens, int) or batch_tokens < 1:
            raise ValueError(f"batch_tokens must be a positive int, got {batch_tokens!r}")
        if isinstance(model, (str, Path)):
            directory = resolve(model)
            model = load(directory, task=self.task, backend="unpadded")
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
        model = model.to(device=device, dtype=DTYPES[dtype]).eval()
        model.encoder.backend = "unpadded"
        if quantize:
            if device != "cpu":
                raise ValueError("int8 dynamic quantisation runs on CPU only")
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
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
            for batch in batches(rows, self.batch_tokens, self.pad_id, types, self.device):
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
