"""Pipelines: answers from a model in one line.

    >>> from unmask import pipeline
    >>> fill = pipeline("fill-mask", "path/to/bert")        # a checkpoint directory or hub id
    >>> fill("Paris is the [MASK] of France.")[0]["token_str"]

Tasks: the names in PIPELINES, or transformers' names for them in ALIASES. Each is a class in
its own module; pipeline() picks it and passes the options through (see its docstring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unmask.pipelines.answer import Answer
from unmask.pipelines.base import Pipeline
from unmask.pipelines.classify import Classify, ZeroShot
from unmask.pipelines.embed import Embed, Similarity
from unmask.pipelines.fill_mask import FillMask
from unmask.pipelines.ner import NER
from unmask.pipelines.score import Score

PIPELINES: dict[str, type[Pipeline]] = {
    "fill-mask": FillMask,
    "score": Score,
    "embed": Embed,
    "similarity": Similarity,
    "classify": Classify,
    "zero-shot": ZeroShot,
    "ner": NER,
    "answer": Answer,
}
ALIASES = {"text-classification": "classify", "zero-shot-classification": "zero-shot",
           "token-classification": "ner", "question-answering": "answer",
           "feature-extraction": "embed", "fill_mask": "fill-mask"}


def pipeline(task: str, model: str | Path | Any, tokenizer=None, engine: str = "torch",
             **options: Any) -> Pipeline:
    """The pipeline for `task` over `model` (a checkpoint directory, hub id or loaded model).

    options: batch_tokens=8192, dtype="auto" | "float32" | "bfloat16" | "int8" (see
    unmask.pipelines.base), device="cpu", progress=None, and per task: truncate (embed,
    similarity), stride (classify, ner), aggregation_strategy (ner: its default per call).
    engine: "torch" (default), or "onnx" for embed: model is then a directory written by
    `unmask export onnx --task embed`, run by ONNX Runtime (unmask.pipelines.engine_onnx).
    """
    name = ALIASES.get(task, task)
    if name not in PIPELINES:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(PIPELINES)}")
    if engine == "onnx":
        if name != "embed":
            raise ValueError(f"engine='onnx' runs the embed pipeline; run {name!r} with "
                             "engine='torch'")
        from unmask.pipelines.engine_onnx import OnnxEmbed

        return OnnxEmbed(model, tokenizer, **options)
    if engine != "torch":
        raise ValueError(f"engine must be 'torch' or 'onnx', got {engine!r}")
    return PIPELINES[name](model, tokenizer, **options)


__all__ = [
    "ALIASES",
    "NER",
    "PIPELINES",
    "Answer",
    "Classify",
    "Embed",
    "FillMask",
    "Pipeline",
    "Score",
    "Similarity",
    "ZeroShot",
    "pipeline",
]
