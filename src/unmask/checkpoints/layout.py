"""load and save: the unmask layout (unmask.json + model.safetensors) and the Hugging Face one
(config.json + model.safetensors under the family's names), for the encoder and every task."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from unmask.checkpoints.families import (
    HEAD_CLASSES,
    family_of,
    hf_config,
    infer_model_type,
    labels,
    model_type_of,
    task_from_architecture,
)
from unmask.checkpoints.files import (
    CONFIG_NAME,
    UNMASK_CONFIG_NAME,
    WEIGHTS_NAME,
    read_json,
    read_weights,
    sentence_transformers_settings,
    write_json,
    write_sentence_transformers,
)
from unmask.checkpoints.hub import resolve
from unmask.checkpoints.keys import BENIGN, is_encoder_key, key_map, normalise_hf
from unmask.config import EncoderConfig
from unmask.heads import TASKS, TaskModel
from unmask.model import Encoder
from unmask.tokenizer.files import read_tokenizer_json

FORMAT_VERSION = 1


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
        unmask.heads.TASKS ("encoder", "embedding", "masked_lm", ...). Loading a task whose
        head the checkpoint lacks initialises the head (warning lists it); train before use.
    dtype: convert the weights (e.g. torch.bfloat16); default float32.
    backend: the encoder's attention backend (default "sdpa"; Embedder: "unpadded").
    allow_pickle: permit pytorch_model.bin (see read_weights).
    task_kwargs: for a fresh head: num_labels=...; for "embedding": pooling=, normalize=,
        max_length= (default: from the sentence-transformers files when present).
    Returns the model in eval mode, with `model.load_report` (LoadReport) attached.
    """
    directory = resolve(name_or_path, revision, allow_pickle)
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
        check_tokenizer(read_tokenizer_json(tokenizer_file), model.config)
    model.to(dtype or torch.float32)
    return model.eval()


def _build(task: str, cfg: EncoderConfig, head: nn.Module | None, backend: str | None,
           extra: dict) -> nn.Module:
    kwargs = dict(extra) if task in ("encoder", "embedding") else {**extra, "head": head}
    if backend is not None:
        kwargs["backend"] = backend
    return TASKS[task](cfg, **kwargs)


def _load_hf(directory: Path, task, backend, allow_pickle, task_kwargs) -> nn.Module:
    h = read_json(directory / CONFIG_NAME)
    state = None if "model_type" in h else read_weights(directory, allow_pickle)  # to infer it
    fam = family_of(model_type_of(h, state or (), directory / CONFIG_NAME))
    cfg = fam.config_from_hf(h)
    task = task or task_from_architecture(h, fam)
    if task not in fam.tasks:
        raise ValueError(f"{fam.model_type} has no {task} head in Hugging Face; choose one of "
                         f"{', '.join(fam.tasks)}")
    head, extra = None, {}
    if task == "embedding":
        extra = {**sentence_transformers_settings(directory), **task_kwargs}
    elif task != "encoder":
        if "num_labels" in task_kwargs:
            h = {**h, "num_labels": task_kwargs.pop("num_labels"), "id2label": None}
        head = fam.head_from_hf(task, h, cfg)
        if task in ("sequence_classification", "token_classification"):
            extra["id2label"] = labels(h)[1]
            if task == "sequence_classification" and h.get("problem_type"):
                extra["problem_type"] = h["problem_type"]
        extra.update(task_kwargs)
    model = _build(task, cfg, head, backend, extra)
    state = normalise_hf(state if state is not None else read_weights(directory, allow_pickle),
                         fam)
    if fam.state_from_hf is not None:
        state = fam.state_from_hf(state, cfg)
    mapping = key_map(model, fam, task, prefixed=True)  # normalise_hf prefixes all
    ours = {key: torch.cat([state[n] for n in names]) if len(names) > 1 else state[names[0]]
            for key, names in mapping.items() if all(n in state for n in names)}
    missing = [key for key in mapping if key not in ours]
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
        if is_encoder_key(model, key):
            raise ValueError(
                f"{directory}: weight for {key} has shape {tuple(value.shape)}, the config "
                f"implies {tuple(own[key].shape)}: config.json does not match the weights"
            )
        del ours[key]  # e.g. another num_labels than the checkpoint's head: start afresh
        missing.append(key)
    encoder_missing = [k for k in missing if is_encoder_key(model, k)]
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
    odd = [k for k in unused if k.startswith(base_prefix) and not BENIGN.search(k)]
    if odd:
        warnings.warn(f"checkpoint weights left unused: {odd[:8]}"
                      f"{' ...' if len(odd) > 8 else ''}", stacklevel=4)
    model.load_report = LoadReport(missing=missing, unused=unused)


def _load_unmask(directory: Path, task, backend, allow_pickle, task_kwargs) -> nn.Module:
    meta = read_json(directory / UNMASK_CONFIG_NAME)
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
        write_json(out / UNMASK_CONFIG_NAME, meta)
        return out
    if format != "hf":
        raise ValueError(f"format must be 'unmask' or 'hf', got {format!r}")
    fam = family_of(model_type or infer_model_type(model))
    if task not in fam.tasks:
        raise ValueError(f"a {fam.model_type} checkpoint has no {task} head; save with "
                         "format='unmask' or pick another model_type")
    hf = hf_config(model, fam, task)
    mapping = key_map(model, fam, task, prefixed=task not in ("encoder", "embedding"))
    tensors = {name: part.clone() if len(names) > 1 else part  # own storage per split tensor
               for key, names in mapping.items()
               for name, part in zip(names, state[key].chunk(len(names)))}
    if fam.state_to_hf is not None:
        tensors = fam.state_to_hf(tensors, model.config)
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    write_json(out / CONFIG_NAME, hf)
    (out / UNMASK_CONFIG_NAME).unlink(missing_ok=True)  # stale: these weights replace it
    if task == "embedding":
        write_sentence_transformers(model, out)
    return out


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
