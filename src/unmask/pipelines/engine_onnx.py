"""engine="onnx": the embed pipeline over a graph written by `unmask export onnx`.

The same API and the same text handling as Embed (tokenizer, windows for long texts, their
token-weighted average, normalisation); only the forward pass runs in ONNX Runtime, on the
graph's "pooled" output (the window average needs vectors before normalisation). onnxruntime
is imported only here, with a clear error when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from unmask.pipelines.base import Batch, check_int
from unmask.pipelines.embed import Embed


class OnnxEmbed(Embed):
    """Embed on ONNX Runtime. model: an export directory (model.onnx, tokenizer,
    unmask_export.json). int8=True (or dtype="int8") runs model.int8.onnx instead."""

    def __init__(self, model: str | Path, tokenizer=None, *, truncate: bool = False,
                 batch_tokens: int = 8192, dtype: str = "auto", quantize: bool = False,
                 device: str = "cpu", progress: Callable[[int, int], None] | None = None,
                 threads: int | None = None):
        from unmask.export import read_meta, session
        from unmask.tokenizer import Tokenizer

        if not isinstance(model, (str, Path)):
            raise TypeError("engine='onnx' takes the directory written by `unmask export onnx`")
        if device != "cpu":
            raise ValueError("engine='onnx' runs on the CPU here; use engine='torch' on GPUs")
        if dtype not in ("auto", "float32", "int8"):
            raise ValueError(f"engine='onnx' runs dtype 'float32' or 'int8', not {dtype!r}")
        directory = Path(model)
        meta = read_meta(directory)
        if meta["task"] != "embed":
            raise ValueError(f"{directory} holds a {meta['task']!r} export; embed needs one "
                             "made with --task embed")
        self.dtype = "int8" if quantize or dtype == "int8" else "float32"
        graph = directory / ("model.int8.onnx" if self.dtype == "int8" else "model.onnx")
        if not graph.is_file():
            raise FileNotFoundError(f"{graph} not found (export with --int8 for the int8 graph)")
        self.session = session(graph, threads)
        self.tokenizer = tokenizer or Tokenizer.from_pretrained(directory)
        self.model = None
        self.batch_tokens = check_int("batch_tokens", batch_tokens)
        self.device, self.progress, self.truncate = "cpu", progress, truncate
        self.normalize, self._pad_id = meta["normalize"], meta["pad_token_id"]
        limit = meta["max_length"]
        self.max_length = min(limit, self.tokenizer.model_max_length or limit)

    @property
    def pad_id(self) -> int:
        return self._pad_id

    def pooled(self, batch: Batch) -> torch.Tensor:
        from unmask.export import run_session

        out = run_session(self.session, batch.input_ids, batch.attention_mask,
                          batch.token_type_ids)
        return torch.from_numpy(out["pooled"])  # (B, H) float32
