"""Key tables: which Hugging Face weight names hold each unmask parameter, per family.

Key mapping is data, not code: per family, a table from our module paths to theirs, with {}
for the layer index. A tuple on the right is concatenated along dim 0 (BERT's separate
query / key / value become our fused qkv) and split back when saving. Tables map modules, so
".weight" and ".bias" follow; a full parameter name maps just that parameter. Encoder tables
are relative to the base model (no "bert." prefix); head tables are relative to the task
model, so the base model's own modules (BERT's pooler) carry its prefix.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from unmask.model import Encoder

if TYPE_CHECKING:
    from unmask.checkpoints.families import Family

BERT_EMBEDDINGS = {
    "embeddings.word": "embeddings.word_embeddings",
    "embeddings.position": "embeddings.position_embeddings",
    "embeddings.token_type": "embeddings.token_type_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
}
BERT_LAYERS = {
    "layers.{}.attn.qkv": ("encoder.layer.{}.attention.self.query",
                           "encoder.layer.{}.attention.self.key",
                           "encoder.layer.{}.attention.self.value"),
    "layers.{}.attn.out": "encoder.layer.{}.attention.output.dense",
    "layers.{}.attn_norm": "encoder.layer.{}.attention.output.LayerNorm",
    "layers.{}.mlp.up": "encoder.layer.{}.intermediate.dense",
    "layers.{}.mlp.down": "encoder.layer.{}.output.dense",
    "layers.{}.mlp_norm": "encoder.layer.{}.output.LayerNorm",
}
ALBERT_LAYERS = {  # {} is the layer group (our shared block); inner_group_num must be 1
    "layers.{}.attn.qkv": ("encoder.albert_layer_groups.{}.albert_layers.0.attention.query",
                           "encoder.albert_layer_groups.{}.albert_layers.0.attention.key",
                           "encoder.albert_layer_groups.{}.albert_layers.0.attention.value"),
    "layers.{}.attn.out": "encoder.albert_layer_groups.{}.albert_layers.0.attention.dense",
    "layers.{}.attn_norm": "encoder.albert_layer_groups.{}.albert_layers.0.attention.LayerNorm",
    "layers.{}.mlp.up": "encoder.albert_layer_groups.{}.albert_layers.0.ffn",
    "layers.{}.mlp.down": "encoder.albert_layer_groups.{}.albert_layers.0.ffn_output",
    "layers.{}.mlp_norm": "encoder.albert_layer_groups.{}.albert_layers.0.full_layer_layer_norm",
}
BERT = {**BERT_EMBEDDINGS, **BERT_LAYERS}  # also RoBERTa and XLM-RoBERTa
ELECTRA = {**BERT_EMBEDDINGS, "embeddings.project": "embeddings_project", **BERT_LAYERS}
ALBERT = {**BERT_EMBEDDINGS, "embeddings.project": "encoder.embedding_hidden_mapping_in",
          **ALBERT_LAYERS}
DISTILBERT = {
    **{k: v for k, v in BERT_EMBEDDINGS.items() if k != "embeddings.token_type"},
    "layers.{}.attn.qkv": ("transformer.layer.{}.attention.q_lin",
                           "transformer.layer.{}.attention.k_lin",
                           "transformer.layer.{}.attention.v_lin"),
    "layers.{}.attn.out": "transformer.layer.{}.attention.out_lin",
    "layers.{}.attn_norm": "transformer.layer.{}.sa_layer_norm",
    "layers.{}.mlp.up": "transformer.layer.{}.ffn.lin1",
    "layers.{}.mlp.down": "transformer.layer.{}.ffn.lin2",
    "layers.{}.mlp_norm": "transformer.layer.{}.output_layer_norm",
}
MODERNBERT = {
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
DEBERTA_V2 = {  # v2 and v3; the optional modules (positions, conv, own table projections)
    **BERT_EMBEDDINGS,  # exist only where the config asks for them, on both sides
    "layers.{}.attn.qkv": ("encoder.layer.{}.attention.self.query_proj",
                           "encoder.layer.{}.attention.self.key_proj",
                           "encoder.layer.{}.attention.self.value_proj"),
    "layers.{}.attn.pos_key": "encoder.layer.{}.attention.self.pos_key_proj",
    "layers.{}.attn.pos_query": "encoder.layer.{}.attention.self.pos_query_proj",
    **{k: v for k, v in BERT_LAYERS.items() if k != "layers.{}.attn.qkv"},
    "relative.table": "encoder.rel_embeddings",
    "relative.norm": "encoder.LayerNorm",
    "conv.conv": "encoder.conv.conv",
    "conv.norm": "encoder.conv.LayerNorm",
}

# Heads, per task: our key -> Hugging Face key, both under the task model.
TOKEN_QA_HEADS = {"token_classification": {"head.out": "classifier"},  # all but ModernBERT
                  "question_answering": {"head.out": "qa_outputs"}}
BERT_HEADS = {
    "masked_lm": {"head.transform.dense": "cls.predictions.transform.dense",
                  "head.transform.norm": "cls.predictions.transform.LayerNorm",
                  "head.bias": "cls.predictions.bias",
                  "head.decoder": "cls.predictions.decoder"},
    "sequence_classification": {"head.dense.dense": "bert.pooler.dense", "head.out": "classifier"},
    "multiple_choice": {"head.dense.dense": "bert.pooler.dense", "head.out": "classifier"},
    **TOKEN_QA_HEADS,
}
ROBERTA_HEADS = {
    "masked_lm": {"head.transform.dense": "lm_head.dense",
                  "head.transform.norm": "lm_head.layer_norm",
                  "head.bias": "lm_head.bias",
                  "head.decoder": "lm_head.decoder"},
    "sequence_classification": {"head.dense.dense": "classifier.dense",
                                "head.out": "classifier.out_proj"},
    "multiple_choice": {"head.dense.dense": "roberta.pooler.dense", "head.out": "classifier"},
    **TOKEN_QA_HEADS,
}
DISTILBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "vocab_transform",
                  "head.transform.norm": "vocab_layer_norm",
                  "head.bias": "vocab_projector.bias",
                  "head.decoder.weight": "vocab_projector.weight"},
    "sequence_classification": {"head.dense.dense": "pre_classifier", "head.out": "classifier"},
    **TOKEN_QA_HEADS,
}
ELECTRA_HEADS = {
    "masked_lm": {"head.transform.dense": "generator_predictions.dense",  # the generator
                  "head.transform.norm": "generator_predictions.LayerNorm",
                  "head.bias": "generator_lm_head.bias",
                  "head.decoder.weight": "generator_lm_head.weight"},
    "replaced_token_detection": {"head.dense.dense": "discriminator_predictions.dense",
                                 "head.out": "discriminator_predictions.dense_prediction"},
    "sequence_classification": {"head.dense.dense": "classifier.dense",
                                "head.out": "classifier.out_proj"},
    **TOKEN_QA_HEADS,
}
ALBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "predictions.dense",
                  "head.transform.norm": "predictions.LayerNorm",
                  "head.bias": "predictions.bias",
                  "head.decoder": "predictions.decoder"},
    "sequence_classification": {"head.dense.dense": "albert.pooler", "head.out": "classifier"},
    **TOKEN_QA_HEADS,
}
MODERNBERT_HEADS = {
    "masked_lm": {"head.transform.dense": "head.dense", "head.transform.norm": "head.norm",
                  "head.bias": "decoder.bias", "head.decoder.weight": "decoder.weight"},
    **{task: {"head.dense.dense": "head.dense", "head.dense.norm": "head.norm",
              "head.out": "classifier"}
       for task in ("sequence_classification", "token_classification", "question_answering")},
}
DEBERTA_HEADS = {  # masked_lm: the current head (legacy=False); DEBERTA_LEGACY renames the old
    "masked_lm": {"head.transform.dense": "lm_predictions.lm_head.dense",
                  "head.transform.norm": "lm_predictions.lm_head.LayerNorm",
                  "head.bias": "lm_predictions.lm_head.bias"},
    "sequence_classification": {"head.dense.dense": "pooler.dense", "head.out": "classifier"},
    "multiple_choice": {"head.dense.dense": "pooler.dense", "head.out": "classifier"},
    **TOKEN_QA_HEADS,
}
# transformers' legacy DeBERTa MLM head (config legacy=True) holds the same weights as the
# current one under BERT's names: read them as the current head.
DEBERTA_LEGACY = {"cls.predictions.transform.dense": "lm_predictions.lm_head.dense",
                  "cls.predictions.transform.LayerNorm": "lm_predictions.lm_head.LayerNorm",
                  "cls.predictions.bias": "lm_predictions.lm_head.bias"}

# Hugging Face keys that may be present and unused without anything being wrong: buffers,
# tied decoder copies, the pre-training heads we do not model (NSP, SOP).
BENIGN = re.compile(
    r"(^|\.)position_ids$|(^|\.)token_type_ids$|(^|\.)decoder\.(weight|bias)$"
    r"|^generator_lm_head\.weight$|^vocab_projector\.weight$|^cls\.seq_relationship\."
    r"|^sop_classifier\.|(^|\.)pooler\.|^(model\.)?rotary_emb\."
)


# === applying the tables ======================================================================

def _compile(table: dict) -> list[tuple[re.Pattern, Any]]:
    out = []
    for ours, theirs in table.items():
        body = re.escape(ours).replace(r"\{\}", r"(?P<i>\d+)")
        out.append((re.compile("^" + body + r"(?:\.(?P<p>\w+))?$"), theirs))
    return out


def covers(table: dict, names: set[str], prefix: str = "") -> bool:
    """Whether checkpoint weight `names` hold every module of encoder `table` (its Hugging
    Face side, any layer index), under `prefix` ("bert.") or none: how a family is told from
    its weight names."""
    modules = {n.rsplit(".", 1)[0] for n in names}
    for theirs in table.values():
        for t in theirs if isinstance(theirs, tuple) else (theirs,):
            pattern = re.compile(re.escape(prefix + t).replace(r"\{\}", r"\d+"))
            if not any(pattern.fullmatch(m) for m in modules):
                return False
    return True


def is_encoder_key(model: nn.Module, key: str) -> bool:
    """Whether parameter `key` of `model` belongs to the encoder (not to a task head)."""
    return isinstance(model, Encoder) or key.startswith("encoder.")


def _hf_names(key: str, compiled, prefix: str = "") -> tuple[str, ...] | None:
    """Our parameter name -> the Hugging Face name(s) it comes from (several = concatenate),
    each with `prefix` in front."""
    for pattern, theirs in compiled:
        if m := pattern.match(key):
            index, param = m.groupdict().get("i") or "", m["p"]
            parts = theirs if isinstance(theirs, tuple) else (theirs,)
            return tuple(prefix + p.replace("{}", index) + (f".{param}" if param else "")
                         for p in parts)
    return None


def key_map(model: nn.Module, fam: Family, task: str, prefixed: bool) -> dict[str, tuple[str, ...]]:
    """Every parameter of `model` -> its Hugging Face name(s) (dict of tuples). prefixed: put
    the base model's prefix ("bert.") on encoder names, as in task checkpoints.
    Raises ValueError when a parameter has no place in this family."""
    enc = _compile(fam.encoder_keys)
    heads = _compile(fam.head_keys.get(task, {}))
    prefix = fam.prefix if prefixed else ""
    out = {}
    for key in model.state_dict():
        if is_encoder_key(model, key):  # an Encoder's own keys have no "encoder."
            names = _hf_names(key.removeprefix("encoder."), enc, prefix)
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


def normalise_hf(state: dict[str, torch.Tensor], fam: Family) -> dict[str, torch.Tensor]:
    """Old TF-era names (LayerNorm.gamma/beta) -> weight/bias; base-model checkpoints (no
    prefix anywhere) get the prefix, so task and base checkpoints read alike."""
    tf = {"gamma": "weight", "beta": "bias"}
    out = {re.sub(r"LayerNorm\.(gamma|beta)$", lambda m: "LayerNorm." + tf[m[1]], k): v
           for k, v in state.items()}
    if not any(k.startswith(fam.prefix) for k in out):
        out = {fam.prefix + k: v for k, v in out.items()}
    for old, new in fam.renames.items():
        out = {new + k[len(old):] if k == old or k.startswith(old + ".") else k: v
               for k, v in out.items()}
    return out
