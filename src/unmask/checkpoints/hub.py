"""Hub ids: a name like "bert-base-uncased" or "org/name" -> a local checkpoint directory."""

from __future__ import annotations

from pathlib import Path

from unmask.checkpoints.files import CONFIG_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME


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
