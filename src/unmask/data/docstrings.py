"""The embedded default corpus: docstrings of the Python standard library and installed packages.

Every machine with Python has this real English prose, so the demo needs no download. Source
files are parsed with `ast`, never imported (importing `antigravity` opens a browser).
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path


def _python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_dir():
            # tests are code, not prose
            yield from sorted(p for p in root.rglob("*.py") if not {"test", "tests"} & set(p.parts))


def _docstrings(path: Path) -> Iterator[str]:
    try:
        source = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old sources
            tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return  # not Python 3 text: nothing to harvest, nothing lost from the user's data
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc.split()) >= 8:  # skip one-liners like "Return x."
                yield doc


def docstring_corpus(max_chars: int = 5_000_000, include_site_packages: bool = True) -> list[str]:
    """Harvest docstrings as documents (one per docstring), stdlib first, up to `max_chars`.

    Returns a list of str in a deterministic order (sorted file paths).
    """
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"])]
    if include_site_packages:
        roots.append(Path(paths["purelib"]))
    documents, total = [], 0
    for path in _python_files(roots):
        for doc in _docstrings(path):
            documents.append(doc)
            total += len(doc)
            if total >= max_chars:
                return documents
    return documents
