"""Checkpoints: Hugging Face layouts in and out, and unmask's own format.

    model = load("path/to/bert-dir")                  # task from config.json's architectures
    model = load("bert-base-uncased")                 # a hub id: fetched into the hub cache
    clf = load("path/to/bert-dir", task="sequence_classification", num_labels=3)
    save(model, "out-dir", format="hf")               # transformers.AutoModel... loads it
    save(model, "out-dir")                            # unmask.json + model.safetensors

Supported Hugging Face families (FAMILIES): bert, roberta, xlm-roberta, distilbert, electra
(discriminator and generator), albert, modernbert, deberta-v2 (v2 and v3), deberta; with their
*Model, *ForMaskedLM (BERT / ALBERT *ForPreTraining: the MLM part; ELECTRA *ForPreTraining: the
discriminator), *ForSequenceClassification, *ForTokenClassification, *ForQuestionAnswering and,
where the family has it, *ForMultipleChoice weights (each family's list: Family.tasks).

One idea per module:
    keys.py      the key tables: our parameter names -> each family's weight names
    families.py  per family, config.json <-> EncoderConfig and the task heads
    files.py     JSON, safetensors (sharded too), the pickle opt-in, sentence-transformers files
    hub.py       hub ids -> a local directory (huggingface_hub's cache, offline mode, revision)
    layout.py    load and save, in unmask's layout and the Hugging Face one
"""

from unmask.checkpoints.families import FAMILIES, Family, config_from_hf, infer_model_type
from unmask.checkpoints.files import (
    CONFIG_NAME,
    PICKLE_NAME,
    UNMASK_CONFIG_NAME,
    WEIGHTS_NAME,
    read_weights,
)
from unmask.checkpoints.hub import resolve
from unmask.checkpoints.layout import LoadReport, check_tokenizer, load, save

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
