"""Checkpoint files: JSON configs, safetensors weights (pickle only on request), and the
sentence-transformers files next to them.

pytorch_model.bin is a pickle, which can run code when loaded: it is read only when the user
opts in (allow_pickle=True in Python, --allow-pickle on the command line), and then with
torch.load(weights_only=True), which refuses anything but tensors.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from unmask.tokenizer.files import read_json as read_any_json

if TYPE_CHECKING:
    from unmask.heads import Embedder

CONFIG_NAME = "config.json"
UNMASK_CONFIG_NAME = "unmask.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAME = "pytorch_model.bin"
# sentence-transformers' pooling modes: the three unmask has, and the ones it refuses
_POOLING_MODES = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
                 "max": "pooling_mode_max_tokens"}
_OTHER_POOLING = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                 "pooling_mode_lasttoken")


def read_json(path: Path, expect: type = dict) -> Any:
    """unmask.tokenizer.files.read_json, which must give a `expect` (object by default;
    modules.json: array). Raises ValueError naming the file when it is not of that shape."""
    obj = read_any_json(path)
    if not isinstance(obj, expect):
        shape = {dict: "an object {...}", list: "an array [...]"}
        raise ValueError(  # noqa: TRY004  (bad file content, not a caller's type error)
            f"{path} holds a JSON {type(obj).__name__}, where {shape[expect]} is expected; "
            "re-download or re-save it")
    return obj


def has_weights(directory: Path) -> bool:
    """Whether `directory` holds safetensors weights (single file or a shard index)."""
    return (directory / WEIGHTS_NAME).is_file() or (directory / WEIGHTS_INDEX_NAME).is_file()


def read_weights(directory: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory, by name, on CPU.

    Reads model.safetensors, or the shards listed in model.safetensors.index.json; falls back to
    pytorch_model.bin only with allow_pickle=True (torch.load with weights_only=True).
    Raises FileNotFoundError when there is no weights file, ValueError when one is corrupt.
    """
    d = Path(directory)
    single, index, pickled = d / WEIGHTS_NAME, d / WEIGHTS_INDEX_NAME, d / PICKLE_NAME
    if single.is_file():
        return _load_safetensors(single)
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise ValueError(f"{index} lists no shards; re-download the checkpoint")
        out: dict[str, torch.Tensor] = {}
        for shard in shards:
            if not (d / shard).is_file():
                raise FileNotFoundError(f"{d / shard} is missing (listed in {index.name})")
            out.update(_load_safetensors(d / shard))
        return out
    if pickled.is_file():
        if not allow_pickle:
            raise ValueError(
                f"{d} has only {PICKLE_NAME}, a pickle file, which can run arbitrary code when "
                "loaded. If you trust its source, opt in with allow_pickle=True (command line: "
                "--allow-pickle): unmask then reads tensors only, nothing else; better, convert "
                "it once to model.safetensors."
            )
        return _load_pickle(pickled)
    raise FileNotFoundError(
        f"no weights in {d}: expected {WEIGHTS_NAME} (or {WEIGHTS_INDEX_NAME} with its shards; "
        f"a hub model with only {PICKLE_NAME} needs allow_pickle=True / --allow-pickle); "
        f"found {sorted(p.name for p in d.iterdir())}"
    )


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a pickle file; any other object in it is refused, even with the opt-in."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # torch's advice in it must not be repeated
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"{path} holds more than tensors{what}, which could run code when unpickled: unmask "
            "refuses it even with allow_pickle=True; get or make a model.safetensors copy"
        ) from None
    except Exception as err:  # noqa: BLE001  (torch raises many types for broken files)
        raise ValueError(f"{path} is truncated or corrupt ({str(err).split('.')[0]}); delete "
                         "it and download it again") from None
    if not isinstance(state, dict):
        raise ValueError(  # noqa: TRY004  (bad file content)
            f"{path} holds a {type(state).__name__}, not a dict of tensors")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{path} is truncated or corrupt ({err}); delete it and download it again"
        ) from None


def sentence_transformers_settings(directory: Path) -> dict[str, Any]:
    """pooling / normalize / max_length from a sentence-transformers directory, if it is one."""
    modules_file = directory / "modules.json"
    if not modules_file.is_file():
        return {}
    modules = read_json(modules_file, expect=list)
    out: dict[str, Any] = {"normalize": any(m.get("type", "").endswith("Normalize")
                                            for m in modules)}
    for m in modules:
        pc = directory / m.get("path", "") / "config.json"
        if not (m.get("type", "").endswith("Pooling") and pc.is_file()):
            continue
        p = read_json(pc)
        modes = [mode for mode, key in _POOLING_MODES.items() if p.get(key)]
        if len(modes) != 1 or any(p.get(k) for k in _OTHER_POOLING):
            raise ValueError(f"unsupported sentence-transformers pooling in {pc}: {p}; "
                             "unmask supports exactly one of cls, mean, max")
        out["pooling"] = modes[0]
    st = directory / "sentence_bert_config.json"
    if st.is_file():
        out["max_length"] = read_json(st).get("max_seq_length")
    return out


def write_sentence_transformers(model: Embedder, out: Path) -> None:
    kinds = ["Transformer", "Pooling", "Normalize"][:3 if model.normalize else 2]
    modules = [{"idx": i, "name": str(i), "path": f"{i}_{kind}" if i else "",
                "type": f"sentence_transformers.models.{kind}"} for i, kind in enumerate(kinds)]
    for m in modules[1:]:
        (out / m["path"]).mkdir(exist_ok=True)
    write_json(out / "modules.json", modules)
    write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.config.hidden_size,
        **{key: model.pooling == mode for mode, key in _POOLING_MODES.items()},
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    if model.max_length:
        write_json(out / "sentence_bert_config.json",
                    {"max_seq_length": model.max_length, "do_lower_case": False})


def write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
