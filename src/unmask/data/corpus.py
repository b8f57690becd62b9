"""Raw text in, documents out: find corpus files and read them as a stream of str documents.

Inputs are files, folders (searched recursively) or glob patterns of:

- .txt (or any file named explicitly): one document per file, or per blank-line-separated
  block with `documents="blank_line"`;
- .jsonl: one JSON object per line, its text in the field `text_field` (default "text");
- .gz of either (e.g. books.txt.gz, pages.jsonl.gz), decompressed while reading.

Decoding: UTF-8; a line that is not valid UTF-8 is decoded as cp1252, or latin-1 for the five
bytes cp1252 leaves undefined. latin-1 maps every byte to a character, so nothing is ever
dropped or crashes, and each file decoded this way gets a `DecodingWarning` that names it.
Deciding per line rather than per file keeps a mostly-UTF-8 file with one stray cp1252 byte
intact instead of turning all of its accents into mojibake.

Reading streams: blank-line and jsonl files are read line by line, so memory holds one
document at a time. With `documents="file"` a document is a whole file, which must fit in
memory; split huge files into blank-line blocks or jsonl records.
"""

from __future__ import annotations

import glob
import gzip
import json
import warnings
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import IO, Literal

__all__ = ["Corpus", "DecodingWarning", "decode_bytes", "find_files"]

PathType = str | PathLike
DocumentMode = Literal["file", "blank_line"]
_MODES = ("file", "blank_line")
# What a folder search picks up; a file named explicitly is read whatever its name.
_FOLDER_SUFFIXES = (".txt", ".jsonl", ".gz")


class DecodingWarning(UserWarning):
    """A file was not valid UTF-8 and some of its lines were decoded as cp1252 or latin-1."""


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _folder_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(_FOLDER_SUFFIXES)
        # skip hidden paths: .git, .cache, editor swap files
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def find_files(inputs: PathType | Iterable[PathType]) -> list[Path]:
    """Resolve files, folders and glob patterns into a sorted, de-duplicated list of files.

    inputs: one path or pattern, or a list of them. A folder contributes its .txt, .jsonl and
    .gz files (recursively, hidden ones skipped); a pattern like "data/**/*.txt" is expanded
    (recursive `**` allowed). Returns list[Path] in input order, each folder / pattern sorted.
    Raises FileNotFoundError naming any input that matches nothing.
    """
    if isinstance(inputs, (str, PathLike)):
        inputs = [inputs]
    elif not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be a path, a glob pattern or a list of them, got {type(inputs).__name__}"
        )
    unique: dict[Path, Path] = {}  # resolved -> first spelling, in input order
    for item in inputs:
        if not isinstance(item, (str, PathLike)):
            raise TypeError(
                f"each input must be a str or Path, got {type(item).__name__}: {item!r}"
            )
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = _folder_files(path)
            if not found:
                raise FileNotFoundError(
                    f"folder {text!r} holds no .txt, .jsonl or .gz files; name the files "
                    "directly (any extension is read as text) or use a glob pattern"
                )
        elif glob.has_magic(text):
            matches = sorted(glob.glob(str(path), recursive=True))
            found = []
            for m in map(Path, matches):
                found.extend([m] if m.is_file() else _folder_files(m) if m.is_dir() else [])
            if not found:
                raise FileNotFoundError(f"pattern {text!r} matches no files")
        else:
            raise FileNotFoundError(f"corpus input {text!r} does not exist")
        for f in found:
            unique.setdefault(f.resolve(), f)
    return list(unique.values())


def _decoded_lines(raw_lines: Iterable[bytes], source: Path) -> Iterator[str]:
    """Each raw line decoded (a UTF-8 byte order mark dropped from the first); warns once,
    after the last line, if any line needed the cp1252 / latin-1 fallback."""
    fallback_lines = first_line = 0
    for lineno, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            fallback_lines += 1
            first_line = first_line or lineno
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError:  # 0x81 0x8D 0x8F 0x90 0x9D are undefined in cp1252
                text = raw.decode("latin-1")  # maps every byte to a character: never fails
        yield text.removeprefix("\ufeff") if lineno == 1 else text
    if fallback_lines:
        warnings.warn(
            f"{source} is not valid UTF-8: decoded {fallback_lines} line(s) as cp1252 (latin-1 "
            f"where cp1252 has no character), first at line {first_line}; no text was dropped. "
            "Re-save the file as UTF-8 to silence this warning",
            DecodingWarning,
            stacklevel=4,  # the loop over the Corpus
        )


def decode_bytes(data: bytes, source: PathType = "<bytes>") -> str:
    """Decode a whole file's bytes: UTF-8, else line by line cp1252 / latin-1 with a warning.

    Returns str with every byte accounted for (never raises UnicodeDecodeError).
    """
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return "".join(_decoded_lines(data.splitlines(keepends=True), Path(source)))


class Corpus:
    """A re-iterable stream of documents (str) read from text and jsonl files.

    inputs: files, folders or glob patterns (see `find_files`); resolved now, so a typo fails
    here with the name of what matched nothing.
    documents: "file" (one document per text file) or "blank_line" (one per block of lines
    separated by blank lines). jsonl files always give one document per record.
    text_field: the jsonl field that holds the text.

    Iterating yields str documents in file order; documents that are empty or only whitespace
    are skipped (they hold no tokens). Iterate as often as you like: each pass re-reads files.

        >>> corpus = Corpus("../shared/data/pretrain_text", documents="file")   # doctest: +SKIP
        >>> n = corpus.count()                                                   # doctest: +SKIP
    """

    def __init__(
        self,
        inputs: PathType | Iterable[PathType],
        documents: DocumentMode = "file",
        text_field: str = "text",
    ):
        if documents not in _MODES:
            raise ValueError(
                f"documents must be 'file' (one document per text file) or 'blank_line' "
                f"(one per blank-line-separated block), got {documents!r}"
            )
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field must be a non-empty str, got {text_field!r}")
        self.documents = documents
        self.text_field = text_field
        self.files = find_files(inputs)
        self._texts: Iterable[str] | None = None

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Corpus:
        """A corpus of in-memory documents, e.g. a list of str.

        texts must be iterable more than once (a list, or an object whose __iter__ starts
        over) when a consumer makes two passes, as `prepare_shards` does for a validation split.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "from_texts takes an iterable of documents, not one str; wrap it in a list"
            )
        if iter(texts) is texts:
            raise TypeError(
                "from_texts needs a re-iterable collection (e.g. a list), not a one-shot "
                "iterator or generator: a second pass would see nothing"
            )
        corpus = cls.__new__(cls)
        corpus.documents, corpus.text_field, corpus.files = "file", "text", []
        corpus._texts = texts
        return corpus

    def __repr__(self) -> str:
        if self._texts is not None:
            return "Corpus.from_texts(...)"
        return f"Corpus({len(self.files)} files, documents={self.documents!r})"

    def __iter__(self) -> Iterator[str]:
        if self._texts is not None:
            for i, text in enumerate(self._texts):
                if not isinstance(text, str):
                    raise TypeError(f"document {i} is {type(text).__name__}, expected str")
                if text.strip():
                    yield text
            return
        for path in self.files:
            if path.name.lower().endswith((".jsonl", ".jsonl.gz")):
                yield from self._jsonl(path)
            elif self.documents == "file":
                with _open_binary(path) as f:
                    text = decode_bytes(f.read(), path)
                if text.strip():
                    yield text
            else:
                yield from self._blocks(path)

    def count(self) -> int:
        """Number of documents (int): one full pass over the files."""
        return sum(1 for _ in self)

    def _blocks(self, path: Path) -> Iterator[str]:
        block: list[str] = []
        with _open_binary(path) as f:
            for line in _decoded_lines(f, path):
                if line.strip():
                    block.append(line.rstrip("\r\n"))
                elif block:
                    yield "\n".join(block)
                    block = []
        if block:
            yield "\n".join(block)

    def _jsonl(self, path: Path) -> Iterator[str]:
        field = self.text_field
        with _open_binary(path) as f:
            for lineno, line in enumerate(_decoded_lines(f, path), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno}); "
                        "each line of a .jsonl file must be one JSON object"
                    ) from None
                if not isinstance(record, dict):
                    raise ValueError(  # noqa: TRY004 (bad data in a file, not a bad argument)
                        f"{path}, line {lineno}: expected a JSON object with a {field!r} "
                        f"field, got {type(record).__name__}"
                    )
                if field not in record:
                    keys = sorted(record)[:10]
                    raise ValueError(
                        f"{path}, line {lineno}: no {field!r} field (fields: {keys}); pass "
                        "text_field=... to name the field that holds the text"
                    )
                text = record[field]
                if not isinstance(text, str):
                    raise ValueError(  # noqa: TRY004 (bad data in a file, not a bad argument)
                        f"{path}, line {lineno}: field {field!r} is {type(text).__name__}, "
                        "expected a string"
                    )
                if text.strip():
                    yield text
