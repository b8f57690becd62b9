"""Checkpoints: Hugging Face layouts in and out, and unmask's own format.

    model = load("path/to/bert-dir")                  # task from config.json's architectures
    clf = load("path/to/bert-dir", task="sequence_classification", num_labels=3)
    save(model, "out-dir", format="hf")               # transformers.AutoModel... loads it
    save(model, "out-dir")                            # unmask.json + model.safetensors

Supported Hugging Face families: bert, roberta, xlm-roberta, distilbert, electra (discriminator
and generator), albert, modernbert; with their *Model, *ForMaskedLM (BERT / ALBERT
*ForPreTraining: the MLM part; ELECTRA *ForPreTraining: the discriminator),
*ForSequenceClassification, *ForTokenClassification and *ForQuestionAnswering weights.

Key mapping is data, not code: per family, a table from our module paths to theirs, with {}
for the layer index. A tuple on the right is concatenated along dim 0 (BERT's separate
query / key / value become our fused qkv) and split back when saving. Tables map modules, so
".weight" and ".bias" follow; a full parameter name maps just that parameter.

Weights are read from safetensors (single file or sharded with model.safetensors.index.json).
pytorch_model.bin is a pickle, which can run code when loaded: it is read only with
allow_pickle=True, and then with torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unmask.config import EncoderConfig
from unmask.heads import (
    TASKS,
    Embedder,
    MaskedLMHead,
    QuestionAnsweringHead,
    ReplacedTokenHead,
    SequenceClassificationHead,
    TaskModel,
    TokenClassificationHead,
)
from unmask.model import Encoder

CONFIG_NAME = "config.json"
UNMASK_CONFIG_NAME = "unmask.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAME = "pytorch_model.bin"
FORMAT_VERSION = 1

HEAD_CLASSES: dict[str, type[nn.Module]] = {
    "masked_lm": MaskedLMHead,
    "sequence_classification": SequenceClassificationHead,
    "token_classification": TokenClassificationHead,
    "question_answering": QuestionAnsweringHead,
    "replaced_token_detection": ReplacedTokenHead,
}

# Hugging Face architecture suffix -> our task ("ForPreTraining" depends on the family).
_SUFFIX_TASK = {
    "Model": "encoder",
    "ForMaskedLM": "masked_lm",
    "ForSequenceClassification": "sequence_classification",
    "ForTokenClassification": "token_classification",
    "ForQuestionAnswering": "question_answering",
}


# === key tables ==============================================================================

_BERT_EMBEDDINGS = {
    "embeddings.word": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.token_type": "embeddings.token_type_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
}
_BERT_LAYERS = {
    "layers.{}.attn.qkv": ("encoder.layer.{}.attention.self.query",
                           "encoder.layer.{}.attention.self.key",
                           "encoder.layer.{}.attention.self.value"),
    "layers.{}.attn.out": "encoder.layer.{}.attention.output.dense",
    "layers.{}.attn_norm": "encoder.layer.{}.attention.output.LayerNorm",
    "layers.{}.mlp.up": "encoder.layer.{}.intermediate.dense",
    "layers.{}.mlp.down": "encoder.layer.{}.output.dense",
    "layers.{}.mlp_norm": "encoder.layer.{}.output.LayerNorm",
}
_ALBERT_LAYERS = {  # {} is the layer group (our shared block); inner_group_num must be 1
    "layers.{}.attn.qkv": ("encoder.albert_layer_groups.{}.albert_layers.0.attention.query",
                           "encoder.albert_layer_groups.{}.albert_layers.0.attention.key",
                           "encoder.albert_layer_groups.{}.albert_layers.0.attention.value"),
    "layers.{}.attn.out": "encoder.albert_layer_groups.{}.albert_layers.0.attention.dense",
    "layers.{}.attn_norm": "encoder.albert_layer_groups.{}.albert_layers.0.attention.LayerNorm",
    "layers.{}.mlp.up": "encoder.albert_layer_groups.{}.albert_layers.0.ffn",
    "layers.{}.mlp.down": "encoder.albert_layer_groups.{}.albert_layers.0.ffn_output",
    "layers.{}.mlp_norm": "encoder.albert_layer_groups.{}.albert_layers.0.full_layer_layer_norm",
}
_DISTILBERT = {
    "embeddings.word": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
    "layers.{}.attn.qkv": ("transformer.layer.{}.attention.q_lin",
                           "transformer.layer.{}.attention.k_lin",
                           "transformer.layer.{}.attention.v_lin"),
    "layers.{}.attn.out": "transformer.layer.{}.attention.out_lin",
    "layers.{}.attn_norm": "transformer.layer.{}.sa_layer_norm",
    "layers.{}.mlp.up": "transformer.layer.{}.ffn.lin1",
    "layers.{}.mlp.down": "transformer.layer.{}.ffn.lin2",
    "layers.{}.mlp_norm": "transformer.layer.{}.output_layer_norm",
}
_MODERNBERT = {
    "embeddings.word": "embeddings.tok_embeddings",
    "embeddings.norm": "embeddings.norm",
    "layers.{}.attn_norm": "layers.{}.attn_norm",  # absent in layer 0 (pre-LN), both sides
    "layers.{}.attn.qkv": "layers.{}.attn.Wqkv",
    "layers.{}.attn.out": "layers.{}.attn.Wo",
    "layers.{}.mlp_norm": "layers.{}.mlp_norm",
    "layers.{}.mlp.up": "layers.{}.mlp.Wi",
    "layers.{}.mlp.down": "layers.{}.mlp.Wo",
    "final_norm": "final_norm",
}

# Heads: our key (under the task model) -> Hugging Face key (under the task model, so the base
# model's own modules, e.g. BERT's pooler, carry its prefix).
_BERT_HEADS = {
    "masked_lm": {"head.transform.dense": "cls.predictions.transform.dense",
                  "head.transform.norm": "cls.predictions.transform.LayerNorm",
                  "head.bias": "cls.predictions.bias",
                  "head.decoder": "cls.predictions.decoder"},
    "sequence_classification": {"head.dense.dense": "bert.pooler.dense", "head.out": "classifier"},
    "token_classification": {"head.out": "classifier"},
    "question_answering": {"head.out": "qa_outputs"},
}
_ROBERTA_HEADS = {
    "masked_lm": {"head.transform.dense": "lm_head.dense",
                  "head.transform.norm": "lm_head.layer_norm",
                  "head.bias": "lm_head.bias",
                  "head.decoder": "lm_head.decoder"},
    "sequence_classification": {"head.dense.dense": "classifier.dense",
                                "head.out": "classifier.out_proj"},
    "token_classification": {"head.out": "classifier"},
    "question_answering": {"head.out": "qa_outputs"},
}
_DISTILBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "vocab_transform",
                  "head.transform.norm": "vocab_layer_norm",
                  "head.bias": "vocab_projector.bias",
                  "head.decoder.weight": "vocab_projector.weight"},
    "sequence_classification": {"head.dense.dense": "pre_classifier", "head.out": "classifier"},
    "token_classification": {"head.out": "classifier"},
    "question_answering": {"head.out": "qa_outputs"},
}
_ELECTRA_HEADS = {
    "masked_lm": {"head.transform.dense": "generator_predictions.dense",  # the generator
                  "head.transform.norm": "generator_predictions.LayerNorm",
                  "head.bias": "generator_lm_head.bias",
                  "head.decoder.weight": "generator_lm_head.weight"},
    "replaced_token_detection": {"head.dense.dense": "discriminator_predictions.dense",
                                 "head.out": "discriminator_predictions.dense_prediction"},
    "sequence_classification": {"head.dense.dense": "classifier.dense",
                                "head.out": "classifier.out_proj"},
    "token_classification": {"head.out": "classifier"},
    "question_answering": {"head.out": "qa_outputs"},
}
_ALBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "predictions.dense",
                  "head.transform.norm": "predictions.LayerNorm",
                  "head.bias": "predictions.bias",
                  "head.decoder": "predictions.decoder"},
    "sequence_classification": {"head.dense.dense": "albert.pooler", "head.out": "classifier"},
    "token_classification": {"head.out": "classifier"},
    "question_answering": {"head.out": "qa_outputs"},
}
_MODERNBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "head.dense", "head.transform.norm": "head.norm",
                  "head.bias": "decoder.bias", "head.decoder.weight": "decoder.weight"},
    "sequence_classification": {"head.dense.dense": "head.dense", "head.dense.norm": "head.norm",
                                "head.out": "classifier"},
    "token_classification": {"head.dense.dense": "head.dense", "head.dense.norm": "head.norm",
                             "head.out": "classifier"},
    "question_answering": {"head.dense.dense": "head.dense", "head.dense.norm": "head.norm",
                           "head.out": "classifier"},
}

# Hugging Face keys that may be present and unused without anything being wrong: buffers,
# tied decoder copies, the pre-training heads we do not model (NSP, SOP).
_BENIGN = re.compile(
    r"(^|\.)position_ids$|(^|\.)token_type_ids$|(^|\.)decoder\.(weight|bias)$"
    r"|^generator_lm_head\.weight$|^vocab_projector\.weight$|^cls\.seq_relationship\."
    r"|^sop_classifier\.|(^|\.)pooler\.|^(model\.)?rotary_emb\."
)


# === config translation, one small function pair per family ==================================

_HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
           "gelu_python": "gelu", "relu": "relu", "tanh": "tanh", "silu": "silu",
           "swish": "silu"}
_OUR_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "gelu_new": "gelu_new", "relu": "relu",
            "tanh": "tanh", "silu": "silu", "geglu": "gelu"}


def _act(name: str, where: str) -> str:
    if name not in _HF_ACT:
        raise ValueError(f"unsupported activation {name!r} in {where}; unmask supports "
                         f"{', '.join(sorted(_HF_ACT))}")
    return _HF_ACT[name]


def _need(h: dict, key: str, family: str):
    if key not in h:
        raise ValueError(f"{family} config.json lacks {key!r}: the file is incomplete")
    return h[key]


def _bert_like_config(h: dict, family: str, **extra: Any) -> EncoderConfig:
    kind = h.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"position_embedding_type={kind!r} is not supported (absolute only)")
    return EncoderConfig(
        vocab_size=_need(h, "vocab_size", family),
        hidden_size=_need(h, "hidden_size", family),
        num_layers=_need(h, "num_hidden_layers", family),
        num_heads=_need(h, "num_attention_heads", family),
        intermediate_size=_need(h, "intermediate_size", family),
        max_position_embeddings=h.get("max_position_embeddings", 512),
        type_vocab_size=h.get("type_vocab_size", 2),
        activation=_act(h.get("hidden_act", "gelu"), f"{family} hidden_act"),
        layer_norm_eps=h.get("layer_norm_eps", 1e-12),
        hidden_dropout=h.get("hidden_dropout_prob", 0.1),
        attention_dropout=h.get("attention_probs_dropout_prob", 0.1),
        pad_token_id=h.get("pad_token_id") if h.get("pad_token_id") is not None else 0,
        **extra,
    )


def _bert_like_to_hf(c: EncoderConfig) -> dict:
    return {
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size, "hidden_act": _OUR_ACT[c.activation],
        "layer_norm_eps": c.layer_norm_eps, "hidden_dropout_prob": c.hidden_dropout,
        "attention_probs_dropout_prob": c.attention_dropout, "pad_token_id": c.pad_token_id,
        "position_embedding_type": "absolute",
    }


def _bert_config(h):
    return _bert_like_config(h, "bert")


def _roberta_config(h):
    pad = h.get("pad_token_id", 1)
    return _bert_like_config(h, "roberta", position_offset=pad + 1)


def _electra_config(h):
    e = h.get("embedding_size", h.get("hidden_size"))
    return _bert_like_config(h, "electra", embedding_size=None if e == h["hidden_size"] else e)


def _albert_config(h):
    if h.get("inner_group_num", 1) != 1:
        raise ValueError(f"ALBERT with inner_group_num={h['inner_group_num']} is not supported "
                         "(only 1, as every released ALBERT)")
    h = {"hidden_act": "gelu_new", **h}
    return _bert_like_config(h, "albert", embedding_size=h.get("embedding_size", 128),
                             shared_layers=h.get("num_hidden_groups", 1))


def _distilbert_config(h):
    return EncoderConfig(
        vocab_size=_need(h, "vocab_size", "distilbert"), hidden_size=_need(h, "dim", "distilbert"),
        num_layers=_need(h, "n_layers", "distilbert"), num_heads=_need(h, "n_heads", "distilbert"),
        intermediate_size=_need(h, "hidden_dim", "distilbert"),
        max_position_embeddings=h.get("max_position_embeddings", 512), type_vocab_size=0,
        activation=_act(h.get("activation", "gelu"), "distilbert activation"),
        layer_norm_eps=1e-12,  # fixed in DistilBERT's code
        hidden_dropout=h.get("dropout", 0.1), attention_dropout=h.get("attention_dropout", 0.1),
        pad_token_id=h.get("pad_token_id") or 0,
    )


def _distilbert_to_hf(c):
    return {"vocab_size": c.vocab_size, "dim": c.hidden_size, "n_layers": c.num_layers,
            "n_heads": c.num_heads, "hidden_dim": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings,
            "activation": _OUR_ACT[c.activation], "dropout": c.hidden_dropout,
            "attention_dropout": c.attention_dropout, "pad_token_id": c.pad_token_id,
            "sinusoidal_pos_embds": False}


def _modernbert_config(h):
    act = h.get("hidden_activation", "gelu")
    if act != "gelu":
        raise ValueError(f"ModernBERT with hidden_activation={act!r} is not supported (gelu)")
    n = _need(h, "num_hidden_layers", "modernbert")
    types = h.get("layer_types")
    every = h.get("global_attn_every_n_layers", 3)
    if types is not None:  # transformers 5 writes the per-layer list; find its period
        every = next((k for k in range(1, n + 1) if all(
            (t == "full_attention") == (i % k == 0) for i, t in enumerate(types))), None)
        if every is None:
            raise ValueError(f"ModernBERT layer_types {types} is not 'global every N layers'")
    rope = h.get("rope_parameters") or {}
    theta = (rope.get("full_attention") or {}).get("rope_theta", h.get("global_rope_theta"))
    local = (rope.get("sliding_attention") or {}).get("rope_theta", h.get("local_rope_theta"))
    return EncoderConfig(
        vocab_size=_need(h, "vocab_size", "modernbert"),
        hidden_size=_need(h, "hidden_size", "modernbert"), num_layers=n,
        num_heads=_need(h, "num_attention_heads", "modernbert"),
        intermediate_size=_need(h, "intermediate_size", "modernbert"),
        max_position_embeddings=h.get("max_position_embeddings", 8192), type_vocab_size=0,
        position="rotary", rope_theta=float(theta if theta is not None else 160000.0),
        local_rope_theta=float(local) if local is not None else None,
        norm="pre", activation="geglu", attention_bias=h.get("attention_bias", False),
        mlp_bias=h.get("mlp_bias", False), norm_bias=h.get("norm_bias", False),
        layer_norm_eps=h.get("norm_eps", 1e-5), hidden_dropout=h.get("mlp_dropout", 0.0),
        attention_dropout=h.get("attention_dropout", 0.0),
        local_window=h.get("local_attention", 128) if every > 1 else None, global_every=every,
        pad_token_id=h.get("pad_token_id") if h.get("pad_token_id") is not None else 50283,
    )


def _modernbert_to_hf(c):
    if (c.position, c.norm, c.activation, c.type_vocab_size) != ("rotary", "pre", "geglu", 0):
        raise ValueError("only rotary, pre-LN, GeGLU models without token types map to "
                         "ModernBERT")
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
            "intermediate_size": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings, "hidden_activation": "gelu",
            "global_rope_theta": c.rope_theta,
            "local_rope_theta": c.local_rope_theta or c.rope_theta,
            "attention_bias": c.attention_bias, "mlp_bias": c.mlp_bias,
            "norm_bias": c.norm_bias, "norm_eps": c.layer_norm_eps,
            "mlp_dropout": c.hidden_dropout, "attention_dropout": c.attention_dropout,
            "embedding_dropout": 0.0,
            "local_attention": c.local_window or c.max_position_embeddings * 2,
            "global_attn_every_n_layers": c.global_every if c.local_window else 1,
            "pad_token_id": c.pad_token_id}


# --- heads, per family: from the HF config, the head module; and back -------------------------

def _labels(h: dict) -> tuple[int, dict[int, str] | None]:
    id2label = h.get("id2label")
    if id2label:
        id2label = {int(k): v for k, v in id2label.items()}
        return len(id2label), id2label
    return h.get("num_labels", 2), None


def _classifier_dropout(h: dict, key: str = "classifier_dropout") -> float:
    p = h.get(key)
    return p if p is not None else h.get("hidden_dropout_prob", 0.1)


def _bert_like_head(task, h, c, mlm_act, cls_act, cls_dropout_key="classifier_dropout"):
    n, _ = _labels(h)
    tied = h.get("tie_word_embeddings", True)
    if task == "masked_lm":
        return MaskedLMHead(c.hidden_size, c.vocab_size, c.embedding_size, mlm_act,
                            c.layer_norm_eps, tied=tied)
    if task == "sequence_classification":
        return SequenceClassificationHead(c.hidden_size, n, "cls", cls_act,
                                          dropout=_classifier_dropout(h, cls_dropout_key))
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n,
                                       dropout=_classifier_dropout(h, cls_dropout_key))
    if task == "question_answering":
        return QuestionAnsweringHead(c.hidden_size, dropout=0.0)
    if task == "replaced_token_detection":
        return ReplacedTokenHead(c.hidden_size, c.activation)
    raise AssertionError(task)


def _bert_head(task, h, c):
    return _bert_like_head(task, h, c, c.activation, "tanh")


def _roberta_head(task, h, c):
    return _bert_like_head(task, h, c, "gelu", "tanh")  # RobertaLMHead: gelu in the code


def _electra_head(task, h, c):
    return _bert_like_head(task, h, c, "gelu", "gelu")  # both fixed to gelu in the code


def _albert_head(task, h, c):
    return _bert_like_head(task, h, c, c.activation, "tanh", "classifier_dropout_prob")


def _distilbert_head(task, h, c):
    n, _ = _labels(h)
    if task == "masked_lm":
        return MaskedLMHead(c.hidden_size, c.vocab_size, None, c.activation, 1e-12,
                            tied=h.get("tie_word_embeddings", True))
    if task == "sequence_classification":
        return SequenceClassificationHead(c.hidden_size, n, "cls", "relu",
                                          dropout=h.get("seq_classif_dropout", 0.2))
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n, dropout=h.get("dropout", 0.1))
    return QuestionAnsweringHead(c.hidden_size, dropout=h.get("qa_dropout", 0.1))


def _modernbert_head(task, h, c):
    n, _ = _labels(h)
    act = _act(h.get("classifier_activation", "gelu"), "modernbert classifier_activation")
    dense = {"activation": act, "norm_eps": c.layer_norm_eps,
                 "dense_bias": h.get("classifier_bias", False), "norm_bias": c.norm_bias}
    if task == "masked_lm":
        return MaskedLMHead(c.hidden_size, c.vocab_size, None, act, c.layer_norm_eps,
                            dense_bias=dense["dense_bias"], norm_bias=c.norm_bias,
                            decoder_bias=h.get("decoder_bias", True),
                            tied=h.get("tie_word_embeddings", True))
    drop = h.get("classifier_dropout", 0.0)
    if task == "sequence_classification":
        return SequenceClassificationHead(c.hidden_size, n, h.get("classifier_pooling", "cls"),
                                          dropout=drop, **dense)
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n, dropout=drop, **dense)
    return QuestionAnsweringHead(c.hidden_size, dropout=drop, **dense)


def _head_to_hf(model: nn.Module) -> dict:
    """The config.json entries that describe a task head (labels, dropout, pooling...)."""
    out: dict[str, Any] = {}
    head = getattr(model, "head", None)
    if isinstance(head, MaskedLMHead):
        out["tie_word_embeddings"] = head.decoder is None
    if isinstance(model, TaskModel) and hasattr(model, "num_labels"):
        id2label = model.id2label or {i: f"LABEL_{i}" for i in range(model.num_labels)}
        out["id2label"] = {str(k): v for k, v in id2label.items()}
        out["label2id"] = {v: int(k) for k, v in id2label.items()}
        if getattr(model, "problem_type", None):
            out["problem_type"] = model.problem_type
    if head is not None and "dropout" in head.spec():
        p = head.spec()["dropout"]
        out.update(classifier_dropout=p, seq_classif_dropout=p, classifier_dropout_prob=p)
    if head is not None and isinstance(head, (SequenceClassificationHead, TokenClassificationHead,
                                              MaskedLMHead)):
        s = head.spec()
        if "pooling" in s:
            out["classifier_pooling"] = s["pooling"]
        if s.get("activation") is not None:
            out["classifier_activation"] = _OUR_ACT.get(s["activation"], s["activation"])
        out["classifier_bias"] = s.get("dense_bias", True)
        if "decoder_bias" in s:
            out["decoder_bias"] = s["decoder_bias"]
    return out


# --- the family table -----------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """How one Hugging Face model family maps onto unmask."""

    model_type: str
    arch: str  # architecture name stem: "Bert" -> BertModel, BertForMaskedLM, ...
    prefix: str  # the base model's attribute in task models: "bert."
    encoder_keys: dict
    head_keys: dict
    config_from_hf: Callable[[dict], EncoderConfig]
    config_to_hf: Callable[[EncoderConfig], dict]
    head_from_hf: Callable[[str, dict, EncoderConfig], nn.Module]
    pretraining_task: str = "masked_lm"  # what *ForPreTraining holds
    head_config: tuple[str, ...] = ("classifier_dropout",)  # config.json keys of its heads

    def architecture(self, task: str) -> str:
        """The Hugging Face class name for `task`: BertForMaskedLM, ElectraForPreTraining..."""
        if task == "replaced_token_detection":
            return self.arch + "ForPreTraining"
        if task == "embedding":
            task = "encoder"
        return self.arch + {t: suffix for suffix, t in _SUFFIX_TASK.items()}[task]

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("encoder", "embedding", *self.head_keys)


FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "Bert", "bert.", {**_BERT_EMBEDDINGS, **_BERT_LAYERS}, _BERT_HEADS,
                   _bert_config, _bert_like_to_hf, _bert_head),
    "roberta": Family("roberta", "Roberta", "roberta.", {**_BERT_EMBEDDINGS, **_BERT_LAYERS},
                      _ROBERTA_HEADS, _roberta_config, _bert_like_to_hf, _roberta_head),
    "xlm-roberta": Family("xlm-roberta", "XLMRoberta", "roberta.",
                          {**_BERT_EMBEDDINGS, **_BERT_LAYERS}, _ROBERTA_HEADS, _roberta_config,
                          _bert_like_to_hf, _roberta_head),
    "distilbert": Family("distilbert", "DistilBert", "distilbert.", _DISTILBERT,
                         _DISTILBERT_HEADS, _distilbert_config, _distilbert_to_hf,
                         _distilbert_head, head_config=("seq_classif_dropout",)),
    "electra": Family("electra", "Electra", "electra.",
                      {**_BERT_EMBEDDINGS, "embeddings.project": "embeddings_project",
                       **_BERT_LAYERS}, _ELECTRA_HEADS, _electra_config,
                      lambda c: {**_bert_like_to_hf(c), "embedding_size": c.embed_dim},
                      _electra_head, pretraining_task="replaced_token_detection"),
    "albert": Family("albert", "Albert", "albert.",
                     {**_BERT_EMBEDDINGS, "embeddings.project": "encoder.embedding_hidden_mapping_in",
                      **_ALBERT_LAYERS}, _ALBERT_HEADS, _albert_config,
                     lambda c: {**_bert_like_to_hf(c), "embedding_size": c.embed_dim,
                                "num_hidden_groups": c.num_blocks, "inner_group_num": 1},
                     _albert_head, head_config=("classifier_dropout_prob",)),
    "modernbert": Family("modernbert", "ModernBert", "model.", _MODERNBERT, _MODERNBERT_HEADS,
                         _modernbert_config, _modernbert_to_hf, _modernbert_head,
                         head_config=("classifier_dropout", "classifier_pooling",
                                      "classifier_activation", "classifier_bias",
                                      "decoder_bias")),
}


def _family(model_type: str) -> Family:
    if model_type not in FAMILIES:
        raise ValueError(
            f"unsupported model_type {model_type!r}; unmask loads {', '.join(FAMILIES)}"
        )
    return FAMILIES[model_type]


def config_from_hf(hf_config: dict) -> EncoderConfig:
    """A Hugging Face config.json (as a dict) -> EncoderConfig. Raises for unsupported ones."""
    return _family(_model_type(hf_config)).config_from_hf(hf_config)


def _model_type(h: dict) -> str:
    kind = h.get("model_type")
    if kind is None:
        raise ValueError("config.json has no model_type: is it a Hugging Face model config?")
    return kind


# === key mapping =============================================================================

def _compile(table: dict) -> list[tuple[re.Pattern, Any]]:
    out = []
    for ours, theirs in table.items():
        body = re.escape(ours).replace(r"\{\}", r"(?P<i>\d+)")
        out.append((re.compile("^" + body + r"(?:\.(?P<p>\w+))?$"), theirs))
    return out


def _hf_names(key: str, compiled) -> tuple[str, ...] | None:
    """Our parameter name -> the Hugging Face name(s) it comes from (several = concatenate)."""
    for pattern, theirs in compiled:
        m = pattern.match(key)
        if not m:
            continue
        index, param = m.groupdict().get("i"), m.group("p")
        parts = theirs if isinstance(theirs, tuple) else (theirs,)
        names = tuple(p.replace("{}", index) if index is not None else p for p in parts)
        return tuple(f"{n}.{param}" if param else n for n in names)
    return None


def _mapping(model: nn.Module, fam: Family, task: str, prefixed: bool):
    """Every parameter of `model` -> its Hugging Face name(s) (dict of tuples). prefixed: put
    the base model's prefix ("bert.") on encoder names, as in task checkpoints.
    Raises ValueError when a parameter has no place in this family."""
    enc = _compile(fam.encoder_keys)
    heads = _compile(fam.head_keys.get(task, {}))
    prefix = fam.prefix if prefixed else ""
    out = {}
    for key in model.state_dict():
        if isinstance(model, Encoder) or key.startswith("encoder."):
            names = _hf_names(key.removeprefix("encoder.") if not isinstance(model, Encoder)
                              else key, enc)
            names = tuple(prefix + n for n in names) if names else None
        else:
            names = _hf_names(key, heads)
        if names is None:
            raise ValueError(
                f"parameter {key!r} has no counterpart in a {fam.model_type} checkpoint; this "
                f"model cannot be written as {fam.architecture(task)}: save it with "
                f"format='unmask'"
            )
        out[key] = names
    return out


# === reading files ===========================================================================

def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-download or re-save it") from None


def read_weights(directory: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory, by name, on CPU.

    Reads model.safetensors, or the shards listed in model.safetensors.index.json; falls back to
    pytorch_model.bin only with allow_pickle=True (torch.load with weights_only=True).
    Raises FileNotFoundError when there is no weights file, ValueError when one is corrupt.
    """
    d = Path(directory)
    single, index, pickle = d / WEIGHTS_NAME, d / WEIGHTS_INDEX_NAME, d / PICKLE_NAME
    if single.is_file():
        return _load_safetensors(single)
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise ValueError(f"{index} lists no shards; re-download the checkpoint")
        out: dict[str, torch.Tensor] = {}
        for shard in shards:
            if not (d / shard).is_file():
                raise FileNotFoundError(f"{d / shard} is missing (listed in {index.name})")
            out.update(_load_safetensors(d / shard))
        return out
    if pickle.is_file():
        if not allow_pickle:
            raise ValueError(
                f"{d} has only {PICKLE_NAME}, a pickle file, which can run arbitrary code when "
                "loaded. If you trust its source, pass allow_pickle=True (it is then read with "
                "torch.load(weights_only=True)); better, convert it once to model.safetensors."
            )
        try:
            state = torch.load(pickle, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (torch raises many types for bad pickles)
            raise ValueError(f"could not read {pickle} with weights_only=True: {err}") from None
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    raise FileNotFoundError(
        f"no weights in {d}: expected {WEIGHTS_NAME} (or {WEIGHTS_INDEX_NAME} with its shards); "
        f"found {sorted(p.name for p in d.iterdir())}"
    )


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path} is truncated or corrupt ({err}); delete it and download it again"
        ) from None


def _normalise_hf(state: dict[str, torch.Tensor], fam: Family) -> dict[str, torch.Tensor]:
    """Old TF-era names (LayerNorm.gamma/beta) -> weight/bias; base-model checkpoints (no
    prefix anywhere) get the prefix, so task and base checkpoints read alike."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", k)
        k = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k)
        out[k] = v
    if not any(k.startswith(fam.prefix) for k in out):
        out = {fam.prefix + k: v for k, v in out.items()}
    return out


# === resolving names =========================================================================

def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint directory for `name_or_path`: the path itself, or a hub download.

    Hub ids ("bert-base-uncased", "org/name") are fetched with huggingface_hub (optional, not
    a dependency of unmask) into its cache. Offline, or without huggingface_hub, the error says
    which files to download and where to put them.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    if p.is_file():
        raise ValueError(f"{p} is a file; pass the directory that holds {CONFIG_NAME} and "
                         f"{WEIGHTS_NAME}")
    name = str(name_or_path)
    manual = (
        f"download {CONFIG_NAME} and {WEIGHTS_NAME} (plus the tokenizer files) from "
        f"https://huggingface.co/{name}/tree/main into a directory, and pass that directory"
    )
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_local:
        raise FileNotFoundError(f"no checkpoint directory at {p}")
    try:
        import huggingface_hub
    except ImportError:
        raise FileNotFoundError(
            f"{name!r} is not a local directory, and huggingface_hub is not installed to fetch "
            f"it from the hub (pip install huggingface_hub). Or {manual}."
        ) from None
    patterns = [CONFIG_NAME, "*.safetensors", WEIGHTS_INDEX_NAME, "tokenizer*", "vocab*",
                "merges.txt", "special_tokens_map.json", "modules.json", "*/config.json",
                "sentence_bert_config.json"]
    try:
        try:  # the cache first: works offline when fetched before
            path = huggingface_hub.snapshot_download(name, revision=revision,
                                                     allow_patterns=patterns,
                                                     local_files_only=True)
        except Exception:  # noqa: BLE001  (not cached: go online)
            path = huggingface_hub.snapshot_download(name, revision=revision,
                                                     allow_patterns=patterns)
    except Exception as err:  # noqa: BLE001  (network, auth, not found: one clear message)
        raise FileNotFoundError(
            f"{name!r} is not a local directory and could not be fetched from the Hugging Face "
            f"hub ({type(err).__name__}: {' '.join(str(err).split())[:160]}). Offline? {manual}."
        ) from None
    return Path(path)


# === load ====================================================================================

@dataclass
class LoadReport:
    """What loading did: `missing` parameters (newly initialised) and checkpoint keys left
    `unused` (another task's head, NSP/SOP heads, tied copies...)."""

    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def load(name_or_path: str | Path, task: str | None = None, *, dtype: torch.dtype | None = None,
         backend: str | None = None, allow_pickle: bool = False, revision: str | None = None,
         **task_kwargs: Any) -> nn.Module:
    """Load a checkpoint directory (Hugging Face or unmask format) or hub id.

    task: None (from the checkpoint: architectures in config.json, or unmask.json), or one of
        "encoder", "embedding", "masked_lm", "sequence_classification",
        "token_classification", "question_answering", "replaced_token_detection". Loading a
        task whose head the checkpoint lacks initialises the head (warning lists it);
        train before use.
    dtype: convert the weights (e.g. torch.bfloat16); default float32.
    backend: the encoder's attention backend (default "sdpa"; Embedder: "unpadded").
    allow_pickle: permit pytorch_model.bin (see read_weights).
    task_kwargs: for a fresh head: num_labels=...; for "embedding": pooling=, normalize=,
        max_length= (default: from the sentence-transformers files when present).
    Returns the model in eval mode, with `model.load_report` (LoadReport) attached.
    """
    directory = resolve(name_or_path, revision)
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if (directory / UNMASK_CONFIG_NAME).is_file():
        model = _load_unmask(directory, task, backend, allow_pickle, task_kwargs)
    elif (directory / CONFIG_NAME).is_file():
        model = _load_hf(directory, task, backend, allow_pickle, task_kwargs)
    else:
        raise FileNotFoundError(
            f"no {CONFIG_NAME} (Hugging Face) or {UNMASK_CONFIG_NAME} (unmask) in {directory}; "
            f"found {sorted(p.name for p in directory.iterdir())}"
        )
    tokenizer_file = directory / "tokenizer.json"
    if tokenizer_file.is_file():  # a tokenizer shipped alongside must fit the embedding table
        from tokenizers import Tokenizer as RustTokenizer

        try:
            tokenizer = RustTokenizer.from_file(str(tokenizer_file))
        except Exception as err:  # noqa: BLE001  (tokenizers raises a bare Exception)
            raise ValueError(f"{tokenizer_file} cannot be read ({err}); re-download it") from None
        check_tokenizer(tokenizer, model.config)
    model.to(dtype or torch.float32)
    return model.eval()


def _build(task: str, cfg: EncoderConfig, head: nn.Module | None, backend: str | None,
           extra: dict) -> nn.Module:
    cls = TASKS[task]
    kwargs = dict(extra)
    if backend is not None:
        kwargs["backend"] = backend
    if task in ("encoder", "embedding"):
        return cls(cfg, **kwargs)
    return cls(cfg, head=head, **kwargs)


def _task_from_architecture(h: dict, fam: Family) -> str:
    archs = h.get("architectures") or [fam.arch + "Model"]
    arch = archs[0]
    if arch.endswith("ForPreTraining"):
        return fam.pretraining_task
    for suffix, task in _SUFFIX_TASK.items():
        if arch.endswith(suffix):
            return task
    raise ValueError(
        f"architecture {arch} has a head unmask does not model; load it with task='encoder' "
        f"(the encoder alone) or one of {', '.join(fam.tasks)}"
    )


def _load_hf(directory: Path, task, backend, allow_pickle, task_kwargs) -> nn.Module:
    h = _read_json(directory / CONFIG_NAME)
    fam = _family(_model_type(h))
    cfg = fam.config_from_hf(h)
    task = task or _task_from_architecture(h, fam)
    if task not in fam.tasks:
        raise ValueError(f"{fam.model_type} has no {task} head in Hugging Face; choose one of "
                         f"{', '.join(fam.tasks)}")
    extra: dict[str, Any] = {}
    head = None
    if task == "embedding":
        extra = {**_sentence_transformers_settings(directory), **task_kwargs}
    elif task != "encoder":
        if "num_labels" in task_kwargs:
            h = {**h, "num_labels": task_kwargs.pop("num_labels"), "id2label": None}
        head = fam.head_from_hf(task, h, cfg)
        _n, id2label = _labels(h)
        if task in ("sequence_classification", "token_classification"):
            extra["id2label"] = id2label
            if task == "sequence_classification" and h.get("problem_type"):
                extra["problem_type"] = h["problem_type"]
        extra.update(task_kwargs)
    model = _build(task, cfg, head, backend, extra)
    state = _normalise_hf(read_weights(directory, allow_pickle), fam)
    mapping = _mapping(model, fam, task, prefixed=True)  # _normalise_hf prefixes all
    ours, missing = {}, []
    for key, names in mapping.items():
        if all(n in state for n in names):
            ours[key] = torch.cat([state[n] for n in names]) if len(names) > 1 else state[names[0]]
        else:
            missing.append(key)
    used = {n for names in mapping.values() for n in names if n in state}
    unused = sorted(k for k in state if k not in used)
    _apply(model, ours, missing, unused, fam.model_type, fam.prefix, directory)
    model.hf_model_type = fam.model_type
    return model


def _apply(model, ours, missing, unused, kind: str, base_prefix: str, directory: Path):
    """Load `ours` into `model`: encoder gaps are errors, head gaps warnings."""
    own = model.state_dict()
    for key, value in list(ours.items()):
        if value.shape == own[key].shape:
            continue
        if isinstance(model, Encoder) or key.startswith("encoder."):
            raise ValueError(
                f"{directory}: weight for {key} has shape {tuple(value.shape)}, the config "
                f"implies {tuple(own[key].shape)}: config.json does not match the weights"
            )
        del ours[key]  # e.g. another num_labels than the checkpoint's head: start afresh
        missing.append(key)
    encoder_missing = [k for k in missing if isinstance(model, Encoder)
                       or k.startswith("encoder.")]
    if encoder_missing:
        raise ValueError(
            f"{directory} lacks encoder weights {encoder_missing[:4]}"
            f"{' ...' if len(encoder_missing) > 4 else ''} ({len(encoder_missing)} in all): it is "
            f"not a complete {kind} checkpoint, or its config does not match its weights"
        )
    model.load_state_dict(ours, strict=False)
    if missing:
        warnings.warn(
            f"newly initialised (not in the checkpoint): {', '.join(missing)}. This head is "
            "untrained: fine-tune it before use.", stacklevel=4)
    odd = [k for k in unused if k.startswith(base_prefix) and not _BENIGN.search(k)]
    if odd:
        warnings.warn(f"checkpoint weights left unused: {odd[:8]}"
                      f"{' ...' if len(odd) > 8 else ''}", stacklevel=4)
    model.load_report = LoadReport(missing=missing, unused=unused)


def _sentence_transformers_settings(directory: Path) -> dict[str, Any]:
    """pooling / normalize / max_length from a sentence-transformers directory, if it is one."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return {}
    modules = _read_json(modules_file)
    out: dict[str, Any] = {"normalize": any(m.get("type", "").endswith("Normalize")
                                            for m in modules)}
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            pc = directory / m.get("path", "") / "config.json"
            if pc.is_file():
                p = _read_json(pc)
                modes = [mode for mode, key in (("cls", "pooling_mode_cls_token"),
                                                ("mean", "pooling_mode_mean_tokens"),
                                                ("max", "pooling_mode_max_tokens"))
                         if p.get(key)]
                if len(modes) != 1 or any(p.get(k) for k in ("pooling_mode_mean_sqrt_len_tokens",
                                                             "pooling_mode_weightedmean_tokens",
                                                             "pooling_mode_lasttoken")):
                    raise ValueError(f"unsupported sentence-transformers pooling in {pc}: {p}; "
                                     "unmask supports exactly one of cls, mean, max")
                out["pooling"] = modes[0]
    st = directory / "sentence_bert_config.json"
    if st.is_file():
        out["max_length"] = _read_json(st).get("max_seq_length")
    return out


def _load_unmask(directory: Path, task, backend, allow_pickle, task_kwargs) -> nn.Module:
    meta = _read_json(directory / UNMASK_CONFIG_NAME)
    if meta.get("format") != "unmask" or "encoder" not in meta:
        raise ValueError(f"{directory / UNMASK_CONFIG_NAME} is not an unmask config")
    cfg = EncoderConfig.from_dict(meta["encoder"])
    stored = meta.get("task", "encoder")
    task = task or stored
    state = read_weights(directory, allow_pickle)
    head, extra = None, {}
    if task == stored:  # rebuild exactly what was saved
        spec = dict(meta.get("spec") or {})
        if task in HEAD_CLASSES:
            head = HEAD_CLASSES[task](**spec.pop("head"))
        extra = {k: v for k, v in spec.items() if v is not None}
        if "id2label" in extra:
            extra["id2label"] = {int(k): v for k, v in extra["id2label"].items()}
    else:  # another task: keep the encoder weights, the new head starts afresh
        old = "" if stored == "encoder" else "encoder."
        new = "" if task == "encoder" else "encoder."
        state = {new + k[len(old):]: v for k, v in state.items()
                 if k.startswith(old) and (old or not k.startswith("head."))}
    model = _build(task, cfg, head, backend, {**extra, **task_kwargs})
    own = model.state_dict()
    ours = {k: v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in ours]
    unused = [k for k in state if k not in own]
    _apply(model, ours, missing, unused, "unmask", "encoder.", directory)
    if meta.get("hf_model_type"):
        model.hf_model_type = meta["hf_model_type"]
    return model


# === save ====================================================================================

def _task_of(model: nn.Module) -> str:
    if isinstance(model, Encoder):
        return "encoder"
    if isinstance(model, TaskModel):
        return model.task
    raise TypeError(f"save takes an unmask Encoder or task model, got {type(model).__name__}")


def infer_model_type(model: nn.Module) -> str:
    """The Hugging Face family a model is most naturally saved as (see save)."""
    known = getattr(model, "hf_model_type", None)
    if known:
        return known
    cfg = model.config
    if cfg.position == "rotary" or cfg.norm == "pre":
        return "modernbert"
    if cfg.shared_layers is not None:
        return "albert"
    if cfg.embedding_size is not None or _task_of(model) == "replaced_token_detection":
        return "electra"
    if cfg.type_vocab_size == 0:
        return "distilbert"
    if cfg.position_offset:
        return "roberta"
    return "bert"


def save(model: nn.Module, directory: str | Path, format: str = "unmask",
         model_type: str | None = None) -> Path:
    """Save `model` (an Encoder or task model) to `directory`, created if needed.

    format: "unmask" (unmask.json + model.safetensors; any model, exact round trip) or "hf"
        (config.json + model.safetensors in the Hugging Face layout of `model_type`, default:
        the family it was loaded from, else inferred from the config; transformers'
        AutoModel / AutoModelFor... load it. An Embedder also gets sentence-transformers'
        modules.json and pooling config). Raises ValueError when the model has parts the
        family cannot express.
    Returns the directory.
    """
    task = _task_of(model)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if format == "unmask":
        meta = {"format": "unmask", "version": FORMAT_VERSION, "task": task,
                "encoder": model.config.to_dict(),
                "spec": model.spec() if isinstance(model, TaskModel) else {},
                "hf_model_type": getattr(model, "hf_model_type", None)}
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
        _write_json(out / UNMASK_CONFIG_NAME, meta)
        return out
    if format != "hf":
        raise ValueError(f"format must be 'unmask' or 'hf', got {format!r}")
    fam = _family(model_type or infer_model_type(model))
    if task not in fam.tasks:
        raise ValueError(f"a {fam.model_type} checkpoint has no {task} head; save with "
                         "format='unmask' or pick another model_type")
    hf = _hf_config(model, fam, task)
    mapping = _mapping(model, fam, task, prefixed=task not in ("encoder", "embedding"))
    tensors: dict[str, torch.Tensor] = {}
    for key, names in mapping.items():
        parts = state[key].chunk(len(names)) if len(names) > 1 else (state[key],)
        for name, part in zip(names, parts):
            tensors[name] = part.clone() if len(names) > 1 else part  # own storage per tensor
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    _write_json(out / CONFIG_NAME, hf)
    (out / UNMASK_CONFIG_NAME).unlink(missing_ok=True)  # stale: these weights replace it
    if task == "embedding":
        _write_sentence_transformers(model, out)
    return out


def _hf_config(model: nn.Module, fam: Family, task: str) -> dict:
    cfg = model.config
    try:
        translated = fam.config_to_hf(cfg)
    except ValueError as err:
        raise ValueError(f"this model does not fit a {fam.model_type} checkpoint: {err}. Save "
                         "it with format='unmask', or choose another model_type.") from None
    hf = {"architectures": [fam.architecture(task)], "model_type": fam.model_type,
          **translated}
    common = ("tie_word_embeddings", "id2label", "label2id", "problem_type")
    hf.update({k: v for k, v in _head_to_hf(model).items() if k in common + fam.head_config})
    # The config must say back exactly what we have: translate it again and compare.
    again = fam.config_from_hf(hf)
    ignore = {"hidden_dropout", "attention_dropout"}  # dropout is training-only detail
    if cfg.local_window is None:
        ignore.add("global_every")  # meaningless without local layers
    diff = {k: (v, getattr(again, k)) for k, v in cfg.to_dict().items()
            if k not in ignore and getattr(again, k) != v}
    if diff:
        raise ValueError(
            f"this model does not fit a {fam.model_type} checkpoint: {diff} (ours, theirs). "
            "Save it with format='unmask', or choose another model_type."
        )
    if task not in ("encoder", "embedding"):
        want = fam.head_from_hf(task, hf, cfg).spec()
        have = model.head.spec()
        diff = {k: (have.get(k), want.get(k)) for k in set(want) | set(have)
                if k != "dropout" and have.get(k) != want.get(k)}
        if diff:
            raise ValueError(
                f"this {task} head does not fit {fam.architecture(task)}: {diff} (ours, theirs). "
                "Save it with format='unmask'."
            )
    return hf


def _write_sentence_transformers(model: Embedder, out: Path) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if model.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(out / "modules.json", modules)
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.config.hidden_size,
        "pooling_mode_cls_token": model.pooling == "cls",
        "pooling_mode_mean_tokens": model.pooling == "mean",
        "pooling_mode_max_tokens": model.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    if model.max_length:
        _write_json(out / "sentence_bert_config.json",
                    {"max_seq_length": model.max_length, "do_lower_case": False})


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# === tokenizer check =========================================================================

def check_tokenizer(tokenizer: Any, model: nn.Module | EncoderConfig) -> None:
    """Raise ValueError when `tokenizer` can produce ids the model has no embedding for.

    tokenizer: an unmask Tokenizer, a tokenizers.Tokenizer, or anything with vocab_size or
    len(). model: a model or its EncoderConfig. A model vocabulary larger than the tokenizer's
    is fine (ModernBERT pads its table to a multiple of 64); a smaller one is not.
    """
    cfg = model if isinstance(model, EncoderConfig) else model.config
    if hasattr(tokenizer, "get_vocab_size"):
        size = tokenizer.get_vocab_size(with_added_tokens=True)
    elif hasattr(tokenizer, "vocab_size"):
        size = tokenizer.vocab_size
    else:
        size = len(tokenizer)
    if size > cfg.vocab_size:
        raise ValueError(
            f"the tokenizer has {size} tokens but the model's vocabulary has {cfg.vocab_size}: "
            "ids above that have no embedding. Use the tokenizer saved with this checkpoint, "
            "or build the model with vocab_size >= the tokenizer's."
        )


__all__ = [
    "CONFIG_NAME",
    "FAMILIES",
    "PICKLE_NAME",
    "UNMASK_CONFIG_NAME",
    "WEIGHTS_NAME",
    "Family",
    "LoadReport",
    "check_tokenizer",
    "config_from_hf",
    "infer_model_type",
    "load",
    "read_weights",
    "resolve",
    "save",
]
