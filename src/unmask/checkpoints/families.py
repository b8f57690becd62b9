"""Family conversions: a Hugging Face config.json <-> EncoderConfig and task heads, per family.

Each family is one Family entry in FAMILIES: its key tables (keys.py), a config translation
each way, and a head builder. Adding a family: tables in keys.py, the functions and the entry
here. Also here: which family a config (or, for old checkpoints, its weight names) belongs to,
and the config.json that `save(format="hf")` writes for a model.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from unmask.checkpoints import keys
from unmask.config import EncoderConfig
from unmask.heads import (
    MaskedLMHead,
    QuestionAnsweringHead,
    ReplacedTokenHead,
    SequenceClassificationHead,
    TaskModel,
    TokenClassificationHead,
)

HEAD_CLASSES: dict[str, type[nn.Module]] = {  # unmask.json's task -> its head class
    "masked_lm": MaskedLMHead,
    "sequence_classification": SequenceClassificationHead,
    "multiple_choice": SequenceClassificationHead,
    "token_classification": TokenClassificationHead,
    "question_answering": QuestionAnsweringHead,
    "replaced_token_detection": ReplacedTokenHead,
}

# Hugging Face architecture suffix -> our task ("ForPreTraining" depends on the family).
SUFFIX_TASK = {
    "Model": "encoder",
    "ForMaskedLM": "masked_lm",
    "ForSequenceClassification": "sequence_classification",
    "ForMultipleChoice": "multiple_choice",
    "ForTokenClassification": "token_classification",
    "ForQuestionAnswering": "question_answering",
}


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


# The config.json key of each EncoderConfig field a family states. The sizes (_REQUIRED) must
# be there; other keys, when absent or null, take the family's defaults, else EncoderConfig's.
_REQUIRED = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
_BERT_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings", "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps", "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob", "pad_token_id": "pad_token_id",
}
_DISTILBERT_KEYS = {
    "vocab_size": "vocab_size", "hidden_size": "dim", "num_layers": "n_layers",
    "num_heads": "n_heads", "intermediate_size": "hidden_dim",
    "max_position_embeddings": "max_position_embeddings", "hidden_dropout": "dropout",
    "attention_dropout": "attention_dropout", "pad_token_id": "pad_token_id",
}  # layer_norm_eps: 1e-12 (EncoderConfig's default) is fixed in DistilBERT's code
_MODERNBERT_KEYS = {
    **{k: _BERT_KEYS[k] for k in (*_REQUIRED, "max_position_embeddings")},
    "attention_bias": "attention_bias", "mlp_bias": "mlp_bias", "norm_bias": "norm_bias",
    "layer_norm_eps": "norm_eps", "hidden_dropout": "mlp_dropout",
    "attention_dropout": "attention_dropout", "pad_token_id": "pad_token_id",
}


def _fields(h: dict, names: dict[str, str], family: str, **defaults: Any) -> dict[str, Any]:
    """EncoderConfig fields from config.json `h` by `names` (our field -> its key)."""
    for key in (names[ours] for ours in _REQUIRED):
        if h.get(key) is None:
            raise ValueError(f"{family} config.json lacks {key!r}: the file is incomplete")
    given = {ours: h[theirs] for ours, theirs in names.items() if h.get(theirs) is not None}
    return {**defaults, **given}


def _to_hf(c: EncoderConfig, names: dict[str, str]) -> dict[str, Any]:
    """The inverse of _fields: config.json entries for the fields in `names`."""
    return {theirs: getattr(c, ours) for ours, theirs in names.items()}


def _bert_config(h: dict, family: str = "bert", **extra: Any) -> EncoderConfig:
    kind = h.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise ValueError(f"position_embedding_type={kind!r} is not supported (absolute only)")
    return EncoderConfig(**_fields(h, _BERT_KEYS, family),
                         activation=_act(h.get("hidden_act", "gelu"), f"{family} hidden_act"),
                         **extra)


def _bert_to_hf(c: EncoderConfig) -> dict:
    return {**_to_hf(c, _BERT_KEYS), "hidden_act": _OUR_ACT[c.activation],
            "position_embedding_type": "absolute"}


def _roberta_config(h):
    return _bert_config(h, "roberta", position_offset=h.get("pad_token_id", 1) + 1)


def _electra_config(h):
    e = h.get("embedding_size", h.get("hidden_size"))
    return _bert_config(h, "electra",
                             embedding_size=None if e == h.get("hidden_size") else e)


def _electra_to_hf(c):
    return {**_bert_to_hf(c), "embedding_size": c.embed_dim}


def _albert_config(h):
    if h.get("inner_group_num", 1) != 1:
        raise ValueError(f"ALBERT with inner_group_num={h['inner_group_num']} is not supported "
                         "(only 1, as every released ALBERT)")
    h = {"hidden_act": "gelu_new", **h}
    return _bert_config(h, "albert", embedding_size=h.get("embedding_size", 128),
                             shared_layers=h.get("num_hidden_groups", 1))


def _albert_to_hf(c):
    return {**_bert_to_hf(c), "embedding_size": c.embed_dim,
            "num_hidden_groups": c.num_blocks, "inner_group_num": 1}


def _distilbert_config(h):
    return EncoderConfig(**_fields(h, _DISTILBERT_KEYS, "distilbert"), type_vocab_size=0,
                         activation=_act(h.get("activation", "gelu"), "distilbert activation"))


def _distilbert_to_hf(c):
    return {**_to_hf(c, _DISTILBERT_KEYS), "activation": _OUR_ACT[c.activation],
            "sinusoidal_pos_embds": False}


def _modernbert_config(h):
    act = h.get("hidden_activation", "gelu")
    if act != "gelu":
        raise ValueError(f"ModernBERT with hidden_activation={act!r} is not supported (gelu)")
    fields = _fields(h, _MODERNBERT_KEYS, "modernbert", max_position_embeddings=8192,
                     attention_bias=False, mlp_bias=False, norm_bias=False, layer_norm_eps=1e-5,
                     hidden_dropout=0.0, attention_dropout=0.0, pad_token_id=50283)
    types = h.get("layer_types")
    every = h.get("global_attn_every_n_layers", 3)
    if types is not None:  # transformers 5 writes the per-layer list; find its period
        every = next((k for k in range(1, fields["num_layers"] + 1) if all(
            (t == "full_attention") == (i % k == 0) for i, t in enumerate(types))), None)
        if every is None:
            raise ValueError(f"ModernBERT layer_types {types} is not 'global every N layers'")
    rope = h.get("rope_parameters") or {}
    theta = (rope.get("full_attention") or {}).get("rope_theta", h.get("global_rope_theta"))
    local = (rope.get("sliding_attention") or {}).get("rope_theta", h.get("local_rope_theta"))
    return EncoderConfig(
        **fields, type_vocab_size=0, position="rotary",
        rope_theta=float(theta if theta is not None else 160000.0),
        local_rope_theta=float(local) if local is not None else None,
        norm="pre", activation="geglu", global_every=every,
        local_window=h.get("local_attention", 128) if every > 1 else None,
    )


def _modernbert_to_hf(c):
    if (c.position, c.norm, c.activation, c.type_vocab_size) != ("rotary", "pre", "geglu", 0):
        raise ValueError("only rotary, pre-LN, GeGLU models without token types map to "
                         "ModernBERT")
    return {**_to_hf(c, _MODERNBERT_KEYS), "hidden_activation": "gelu",
            "global_rope_theta": c.rope_theta,
            "local_rope_theta": c.local_rope_theta or c.rope_theta, "embedding_dropout": 0.0,
            "local_attention": c.local_window or c.max_position_embeddings * 2,
            "global_attn_every_n_layers": c.global_every if c.local_window else 1}


def _deberta_config(h):
    """DeBERTa-v2 / v3 (model_type "deberta-v2"): BERT's block plus unmask.relative's terms."""
    h = {"type_vocab_size": 0, "layer_norm_eps": 1e-7, **h}
    terms = h.get("pos_att_type") or []
    terms = [t.strip() for t in terms.lower().split("|")] if isinstance(terms, str) else terms
    if not h.get("relative_attention", False):
        terms = []
    if h.get("embedding_size", h.get("hidden_size")) != h.get("hidden_size"):
        raise ValueError("DeBERTa with embedding_size != hidden_size is not supported")
    norm = [x.strip() for x in str(h.get("norm_rel_ebd", "none")).lower().split("|")]
    return _bert_config(
        h, "deberta-v2",
        position="absolute" if h.get("position_biased_input", True) else "none",
        relative_attention=tuple(terms),
        position_buckets=max(h.get("position_buckets", -1), 0),
        max_relative_positions=max(h.get("max_relative_positions", -1), 0),
        relative_norm="layer_norm" in norm, share_att_key=bool(h.get("share_att_key", False)),
        conv_kernel_size=h.get("conv_kernel_size", 0),
        conv_activation=_act(h.get("conv_act", "tanh"), "deberta-v2 conv_act"))


def _deberta_to_hf(c):
    if c.position not in ("absolute", "none"):
        raise ValueError(f"DeBERTa has no {c.position} positions")
    return {**_bert_to_hf(c), "relative_attention": bool(c.relative_attention),
            "pos_att_type": list(c.relative_attention),
            "position_buckets": c.position_buckets or -1,
            "max_relative_positions": c.max_relative_positions or -1,
            "norm_rel_ebd": "layer_norm" if c.relative_norm else "none",
            "share_att_key": c.share_att_key, "position_biased_input": c.position == "absolute",
            "conv_kernel_size": c.conv_kernel_size, "conv_act": _OUR_ACT[c.conv_activation],
            "legacy": False}  # the masked-LM head is written under its current names


_V2_ONLY = ("position_buckets", "norm_rel_ebd", "share_att_key", "conv_kernel_size")


def _deberta_v1_config(h):
    """DeBERTa v1 (model_type "deberta"): v2's arithmetic without buckets, norm, shared keys
    or convolution; its fused, head-interleaved in_proj is converted by _v1_state_*."""
    if h.get("talking_head", False):
        raise ValueError("DeBERTa with talking_head=true is not supported")
    return _deberta_config({k: v for k, v in h.items() if k not in _V2_ONLY})


def _deberta_v1_to_hf(c):
    if c.position_buckets or c.relative_norm or c.share_att_key or c.conv_kernel_size:
        raise ValueError("DeBERTa v1 has no position buckets, relative norm, shared keys or "
                         "convolution: save it as deberta-v2")
    return {k: v for k, v in _deberta_to_hf(c).items() if k not in (*_V2_ONLY, "conv_act")}


_V1 = "deberta.encoder.layer.{}.attention.self."


def _v1_layers(state: dict) -> list[str]:
    pattern = re.compile(re.escape(_V1).replace(r"\{\}", r"(\d+)") + r"in_proj\.weight$")
    return sorted({m.group(1) for k in state if (m := pattern.match(k))}, key=int)


def _v1_state_from_hf(state: dict, cfg: EncoderConfig) -> dict:
    """v1's in_proj (3H, H), per head [q k v] rows, plus q_bias / v_bias -> v2's query_proj /
    key_proj / value_proj (the key's bias is zero); pos_proj (no bias) -> pos_key_proj."""
    out = dict(state)
    nh, h = cfg.num_heads, cfg.hidden_size
    for i in _v1_layers(state):
        at = _V1.replace("{}", i)
        w = out.pop(at + "in_proj.weight").view(nh, 3, h // nh, h)  # (nh, 3, hd, H)
        biases = (out.pop(at + "q_bias"), torch.zeros(h, dtype=w.dtype), out.pop(at + "v_bias"))
        for j, name in enumerate(("query_proj", "key_proj", "value_proj")):
            out[at + name + ".weight"] = w[:, j].reshape(h, h)
            out[at + name + ".bias"] = biases[j]
        if at + "pos_proj.weight" in out:
            out[at + "pos_key_proj.weight"] = out.pop(at + "pos_proj.weight")
            out[at + "pos_key_proj.bias"] = torch.zeros(h, dtype=w.dtype)
        for p in ("weight", "bias"):
            if f"{at}pos_q_proj.{p}" in out:
                out[f"{at}pos_query_proj.{p}"] = out.pop(f"{at}pos_q_proj.{p}")
    return out


def _v1_state_to_hf(state: dict, cfg: EncoderConfig) -> dict:
    """The inverse of _v1_state_from_hf; refuses biases v1 has no place for."""
    out = dict(state)
    nh, h = cfg.num_heads, cfg.hidden_size
    prefix = "deberta." if any(k.startswith("deberta.") for k in out) else ""
    for i in range(cfg.num_layers):
        at = (prefix + _V1.removeprefix("deberta.")).replace("{}", str(i))
        w = [out.pop(f"{at}{n}.weight") for n in ("query_proj", "key_proj", "value_proj")]
        qb, kb, vb = (out.pop(f"{at}{n}.bias") for n in ("query_proj", "key_proj", "value_proj"))
        extra = out.pop(at + "pos_key_proj.bias", None)
        if bool(kb.any()) or (extra is not None and bool(extra.any())):
            raise ValueError("DeBERTa v1 has no key bias or c2p projection bias, and this "
                             "model's are not zero: save it as deberta-v2")
        out[at + "in_proj.weight"] = torch.stack([x.view(nh, h // nh, h) for x in w], 1).reshape(
            3 * h, h)
        out[at + "q_bias"], out[at + "v_bias"] = qb, vb
        if at + "pos_key_proj.weight" in out:
            out[at + "pos_proj.weight"] = out.pop(at + "pos_key_proj.weight")
        for p in ("weight", "bias"):
            if f"{at}pos_query_proj.{p}" in out:
                out[f"{at}pos_q_proj.{p}"] = out.pop(f"{at}pos_query_proj.{p}")
    return out


# --- heads, per family: from the HF config, the head module; and back -------------------------

def labels(h: dict) -> tuple[int, dict[int, str] | None]:
    id2label = h.get("id2label")
    if id2label:
        id2label = {int(k): v for k, v in id2label.items()}
        return len(id2label), id2label
    return h.get("num_labels", 2), None


def _classifier_dropout(h: dict, key: str = "classifier_dropout") -> float:
    p = h.get(key)
    return p if p is not None else h.get("hidden_dropout_prob", 0.1)


def _bert_head(task, h, c, mlm_act=None, cls_act="tanh", cls_dropout_key="classifier_dropout"):
    """BERT's heads, and those of the families that vary only its activations (mlm_act None:
    the encoder's) and dropout key: RoBERTa, ELECTRA, ALBERT (see FAMILIES)."""
    n, _ = labels(h)
    drop = _classifier_dropout(h, cls_dropout_key)
    if task == "masked_lm":
        return MaskedLMHead(c.hidden_size, c.vocab_size, c.embedding_size,
                            mlm_act or c.activation, c.layer_norm_eps,
                            tied=h.get("tie_word_embeddings", True))
    if task in ("sequence_classification", "multiple_choice"):  # multiple choice: the pooler,
        return SequenceClassificationHead(  # then one score per choice
            c.hidden_size, 1 if task == "multiple_choice" else n, "cls", cls_act, dropout=drop)
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n, dropout=drop)
    if task == "question_answering":
        return QuestionAnsweringHead(c.hidden_size, dropout=0.0)
    if task == "replaced_token_detection":
        return ReplacedTokenHead(c.hidden_size, c.activation)
    raise AssertionError(task)


_roberta_head = partial(_bert_head, mlm_act="gelu")  # RobertaLMHead: gelu in the code
_electra_head = partial(_bert_head, mlm_act="gelu", cls_act="gelu")  # both gelu in the code
_albert_head = partial(_bert_head, cls_dropout_key="classifier_dropout_prob")


def _distilbert_head(task, h, c):
    n, _ = labels(h)
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
    n, _ = labels(h)
    act = _act(h.get("classifier_activation", "gelu"), "modernbert classifier_activation")
    bias = {"dense_bias": h.get("classifier_bias", False), "norm_bias": c.norm_bias}
    dense = {"activation": act, "norm_eps": c.layer_norm_eps, **bias}
    if task == "masked_lm":
        return MaskedLMHead(c.hidden_size, c.vocab_size, None, act, c.layer_norm_eps, **bias,
                            decoder_bias=h.get("decoder_bias", True),
                            tied=h.get("tie_word_embeddings", True))
    drop = h.get("classifier_dropout", 0.0)
    if task == "sequence_classification":
        return SequenceClassificationHead(c.hidden_size, n, h.get("classifier_pooling", "cls"),
                                          dropout=drop, **dense)
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n, dropout=drop, **dense)
    return QuestionAnsweringHead(c.hidden_size, dropout=drop, **dense)


def _deberta_head(task, h, c):
    n, _ = labels(h)
    if task == "masked_lm":  # both transformers variants: dense, act, norm, tied decoder
        return MaskedLMHead(c.hidden_size, c.vocab_size, None, c.activation, c.layer_norm_eps)
    if task in ("sequence_classification", "multiple_choice"):  # ContextPooler: dense + act
        return SequenceClassificationHead(                          # on the first token
            c.hidden_size, 1 if task == "multiple_choice" else n, "cls",
            _act(h.get("pooler_hidden_act", "gelu"), "pooler_hidden_act"),
            dropout=_classifier_dropout(h, "cls_dropout"))
    if task == "token_classification":
        return TokenClassificationHead(c.hidden_size, n, dropout=h.get("hidden_dropout_prob", 0.1))
    return QuestionAnsweringHead(c.hidden_size, dropout=0.0)


def _head_to_hf(model: nn.Module) -> dict:
    """The config.json entries that describe a task head (labels, dropout, pooling...)."""
    out: dict[str, Any] = {}
    if isinstance(model, TaskModel) and hasattr(model, "num_labels"):
        id2label = model.id2label or {i: f"LABEL_{i}" for i in range(model.num_labels)}
        out["id2label"] = {str(k): v for k, v in id2label.items()}
        out["label2id"] = {v: int(k) for k, v in id2label.items()}
        if getattr(model, "problem_type", None):
            out["problem_type"] = model.problem_type
    head = getattr(model, "head", None)
    if head is None:
        return out
    s = head.spec()
    if isinstance(head, MaskedLMHead):
        out["tie_word_embeddings"] = head.decoder is None
    if "dropout" in s:
        out.update(dict.fromkeys(("classifier_dropout", "seq_classif_dropout",
                                  "classifier_dropout_prob", "cls_dropout"), s["dropout"]))
    if isinstance(head, (SequenceClassificationHead, TokenClassificationHead, MaskedLMHead)):
        if "pooling" in s:
            out["classifier_pooling"] = s["pooling"]
        if s.get("activation") is not None:
            act = _OUR_ACT.get(s["activation"], s["activation"])
            out["classifier_activation"] = out["pooler_hidden_act"] = act
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
    renames: dict = field(default_factory=dict)  # old weight-name prefixes -> current ones
    # whole-state conversions where a table cannot say it (DeBERTa v1's interleaved in_proj)
    state_from_hf: Callable[[dict, EncoderConfig], dict] | None = None
    state_to_hf: Callable[[dict, EncoderConfig], dict] | None = None

    def architecture(self, task: str) -> str:
        """The Hugging Face class name for `task`: BertForMaskedLM, ElectraForPreTraining..."""
        if task == "replaced_token_detection":
            return self.arch + "ForPreTraining"
        if task == "embedding":
            task = "encoder"
        return self.arch + {t: suffix for suffix, t in SUFFIX_TASK.items()}[task]

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("encoder", "embedding", *self.head_keys)


FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "Bert", "bert.", keys.BERT, keys.BERT_HEADS,
                   _bert_config, _bert_to_hf, _bert_head),
    "roberta": Family("roberta", "Roberta", "roberta.", keys.BERT, keys.ROBERTA_HEADS,
                      _roberta_config, _bert_to_hf, _roberta_head),
    "xlm-roberta": Family("xlm-roberta", "XLMRoberta", "roberta.", keys.BERT, keys.ROBERTA_HEADS,
                          _roberta_config, _bert_to_hf, _roberta_head),
    "distilbert": Family("distilbert", "DistilBert", "distilbert.", keys.DISTILBERT,
                         keys.DISTILBERT_HEADS, _distilbert_config, _distilbert_to_hf,
                         _distilbert_head, head_config=("seq_classif_dropout",)),
    "electra": Family("electra", "Electra", "electra.", keys.ELECTRA, keys.ELECTRA_HEADS,
                      _electra_config, _electra_to_hf, _electra_head,
                      pretraining_task="replaced_token_detection"),
    "albert": Family("albert", "Albert", "albert.", keys.ALBERT, keys.ALBERT_HEADS,
                     _albert_config, _albert_to_hf, _albert_head,
                     head_config=("classifier_dropout_prob",)),
    "modernbert": Family("modernbert", "ModernBert", "model.", keys.MODERNBERT,
                         keys.MODERNBERT_HEADS, _modernbert_config, _modernbert_to_hf,
                         _modernbert_head,
                         head_config=("classifier_dropout", "classifier_pooling",
                                      "classifier_activation", "classifier_bias",
                                      "decoder_bias")),
    "deberta-v2": Family("deberta-v2", "DebertaV2", "deberta.", keys.DEBERTA_V2,
                         keys.DEBERTA_HEADS, _deberta_config, _deberta_to_hf, _deberta_head,
                         head_config=("cls_dropout", "pooler_hidden_act"),
                         renames=keys.DEBERTA_LEGACY),
    "deberta": Family("deberta", "Deberta", "deberta.", keys.DEBERTA_V2, keys.DEBERTA_HEADS,
                      _deberta_v1_config, _deberta_v1_to_hf, _deberta_head,
                      head_config=("cls_dropout", "pooler_hidden_act"),
                      renames=keys.DEBERTA_LEGACY, state_from_hf=_v1_state_from_hf,
                      state_to_hf=_v1_state_to_hf),
}


def family_of(model_type: str) -> Family:
    if model_type not in FAMILIES:
        raise ValueError(
            f"unsupported model_type {model_type!r}; unmask loads {', '.join(FAMILIES)}"
        )
    return FAMILIES[model_type]


def config_from_hf(hf_config: dict) -> EncoderConfig:
    """A Hugging Face config.json (as a dict) -> EncoderConfig. Raises for unsupported ones."""
    return family_of(model_type_of(hf_config)).config_from_hf(hf_config)


def model_type_of(h: dict, names: Iterable[str] = (), where: object = "config.json") -> str:
    """The family (model_type) of Hugging Face config `h`.

    Configs written before transformers recorded model_type (many published BERTs) get it
    from their architectures, else from the checkpoint's weight `names` (a warning says what
    was inferred). Raises ValueError, saying how to settle it, when no family or several
    different ones fit. where: the config's path, for messages.
    """
    kind = h.get("model_type")
    if kind is not None:
        return kind
    kind, why = _infer_family(h, set(names))
    fix = f'add "model_type" (one of {", ".join(FAMILIES)}) to it'
    if kind is None:
        raise ValueError(f"{where} has no model_type, and {why}: {fix}")
    warnings.warn(f"{where} has no model_type: loading it as {kind!r}, inferred from {why}. "
                  f'Add "model_type": "{kind}" to it to say so.', stacklevel=4)
    return kind


def _infer_family(h: dict, names: set[str]) -> tuple[str | None, str]:
    """(model_type, why) from architectures or weight names; (None, why not) when unsure."""
    for arch in h.get("architectures") or ():
        stems = [f for f in FAMILIES.values() if arch.startswith(f.arch)
                 and (arch[len(f.arch):] == "Model" or arch[len(f.arch):].startswith("For"))]
        if stems:
            return max(stems, key=lambda f: len(f.arch)).model_type, f"its architecture {arch}"
    if not names:
        return None, "it names no architectures"
    fits = [f for f in FAMILIES.values() if keys.covers(f.encoder_keys, names, f.prefix)]
    how = f"its weight names ({fits[0].prefix}*)" if fits else "its weight names (no prefix)"
    fits = fits or [f for f in FAMILIES.values() if keys.covers(f.encoder_keys, names)]
    most = max((len(f.encoder_keys) for f in fits), default=0)  # ELECTRA's table holds BERT's
    distinct: dict[tuple, str] = {}  # families that convert alike -> the first one's type
    for f in fits:  # (RoBERTa and XLM-RoBERTa: roberta stands for both)
        if len(f.encoder_keys) == most:
            distinct.setdefault((tuple(f.encoder_keys.items()), f.config_from_hf), f.model_type)
    kinds = list(distinct.values())
    if "bert" in kinds and len(kinds) > 1 and h.get("type_vocab_size", 2) != 1:
        return "bert", f"{how} and type_vocab_size={h.get('type_vocab_size', 2)} (RoBERTa has 1)"
    if len(kinds) == 1:
        return kinds[0], how
    if not kinds:
        return None, "its weight names fit no family unmask loads"
    return None, f"{how} fit {' and '.join(kinds)} alike"


def task_from_architecture(h: dict, fam: Family) -> str:
    arch = (h.get("architectures") or [fam.arch + "Model"])[0]
    if arch.endswith("ForPreTraining"):
        return fam.pretraining_task
    for suffix, task in SUFFIX_TASK.items():
        if arch.endswith(suffix):
            return task
    raise ValueError(
        f"architecture {arch} has a head unmask does not model; load it with task='encoder' "
        f"(the encoder alone) or one of {', '.join(fam.tasks)}"
    )


def infer_model_type(model: nn.Module) -> str:
    """The Hugging Face family a model is most naturally saved as (see save)."""
    known = getattr(model, "hf_model_type", None)
    if known:
        return known
    cfg = model.config
    if cfg.relative_attention or cfg.position == "none":
        return "deberta-v2"
    if cfg.position == "rotary" or cfg.norm == "pre":
        return "modernbert"
    if cfg.shared_layers is not None:
        return "albert"
    if cfg.embedding_size is not None or getattr(model, "task", None) == "replaced_token_detection":
        return "electra"
    if cfg.type_vocab_size == 0:
        return "distilbert"
    if cfg.position_offset:
        return "roberta"
    return "bert"


def hf_config(model: nn.Module, fam: Family, task: str) -> dict:
    def unfit(why: object) -> ValueError:
        return ValueError(f"this model does not fit a {fam.model_type} checkpoint: {why}. Save "
                          "it with format='unmask', or choose another model_type.")

    cfg = model.config
    try:
        translated = fam.config_to_hf(cfg)
    except ValueError as err:
        raise unfit(err) from None
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
        raise unfit(f"{diff} (ours, theirs)")
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
