"""Hub ids: a name like "bert-base-uncased" or "org/name" -> a local checkpoint directory.

`resolve` is the one door every loader goes through (load, Tokenizer.from_pretrained,
pipelines, the fine-tuning tasks, the CLI), so each of them takes a directory or a hub id alike.
A hub id is fetched with huggingface_hub's snapshot_download into its cache, only the files a
checkpoint needs (config, weights, tokenizer, sentence-transformers settings), the way
transformers' from_pretrained does: HF_HOME / HF_HUB_CACHE choose the cache, HF_HUB_OFFLINE=1
uses only what is cached, HF_TOKEN authenticates (huggingface_hub reads it), and `revision`
picks a branch, tag or commit. The environment is read at each call, not when
huggingface_hub was first imported, so a process that sets these variables gets what it set.
"""

from __future__ import annotations

import os
from pathlib import Path

from unmask.checkpoints.files import (
    CONFIG_NAME,
    PICKLE_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    has_weights,
)

# What a checkpoint directory may need; nothing else is downloaded (no TF / Flax / ONNX copies).
HUB_FILES = [
    CONFIG_NAME, "model*.safetensors", WEIGHTS_INDEX_NAME,  # model
    "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json", "added_tokens.json",
    "*.model",  # tokenizer (tokenizer.json, vocab.txt, vocab.json, sentencepiece models)
    "modules.json", "sentence_bert_config.json", "*/config.json",  # sentence-transformers
]


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: use the hub cache only."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_cache() -> Path:
    """The hub cache folder, as huggingface_hub computes it from the environment now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def is_hub_id(name: str) -> bool:
    """Whether `name` has the shape of a hub model id: "name" or "org/name" (letters, digits,
    - _ .; no "--" or ".."), as huggingface_hub validates it."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve(name_or_path: str | Path, revision: str | None = None,
            allow_pickle: bool = False) -> Path:
    """A local checkpoint directory for `name_or_path`: the directory itself, or a hub id's
    snapshot in the hub cache (downloaded if needed).

    revision: a branch, tag or commit of a hub model (default "main"); ignored for directories.
    allow_pickle: when the hub model has no safetensors weights, fetch pytorch_model.bin too
        (read later only with allow_pickle=True; see read_weights).
    Raises FileNotFoundError naming the id and what to do when it is neither a directory nor
    on the hub (or, offline, not in the cache); ValueError for a file instead of a directory.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    if p.is_file():
        raise ValueError(f"{p} is a file; pass the directory that holds {CONFIG_NAME} and "
                         f"{WEIGHTS_NAME}")
    name = str(name_or_path)
    if isinstance(name_or_path, Path) or not is_hub_id(name):
        raise FileNotFoundError(f"no checkpoint directory at {p}")
    path = _download(name, revision, HUB_FILES)
    if allow_pickle and not has_weights(path):
        path = _download(name, revision, [PICKLE_NAME])
    return path


def _download(name: str, revision: str | None, patterns: list[str]) -> Path:
    """snapshot_download of `patterns`, its errors turned into one line that says what to do."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = hub_cache()
    where = f"{name!r}" + (f" at revision {revision!r}" if revision else "")
    manual = (f"or download {CONFIG_NAME}, {WEIGHTS_NAME} and the tokenizer files from "
              f"https://huggingface.co/{name}/tree/{revision or 'main'} into a directory and pass "
              "that directory")
    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=patterns,
                                      cache_dir=cache, local_files_only=offline()))
    except RevisionNotFoundError:
        raise FileNotFoundError(f"the hub model {name!r} has no revision {revision!r}: pass an "
                                "existing branch, tag or commit") from None
    except GatedRepoError:
        raise FileNotFoundError(f"the hub model {name!r} is gated: accept its terms on "
                                f"https://huggingface.co/{name} and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{name!r} is neither a local directory nor a hub model you can read (no such "
            "model, or it is private): check the spelling, or set HF_TOKEN for a private one"
        ) from None
    except LocalEntryNotFoundError as err:
        if type(err).__name__ == "IncompleteSnapshotError":
            why = f"its copy in the hub cache {cache} is incomplete"
        elif offline():
            why = f"it is not in the hub cache {cache} and HF_HUB_OFFLINE=1 forbids downloading"
        else:
            why = f"the hub cannot be reached and it is not in the hub cache {cache}"
        raise FileNotFoundError(
            f"{where} is not a local directory, and {why}: run once with network access (and "
            f"HF_HUB_OFFLINE unset) to cache it, {manual}"
        ) from None
    except OSError as err:  # network errors that slipped through, a read-only cache...
        raise FileNotFoundError(
            f"{where} could not be fetched from the Hugging Face hub ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]}); {manual}"
        ) from None
