"""Tokenise a corpus once into memory-mapped token shards; read them back as numpy arrays.

Layout of a prepared directory (every file is plain numpy or JSON, readable without unmask):

    manifest.json              dtype, vocab size, special token ids, counts, shard list; written
                               last, so its presence means the run finished
    tokenizer.json             the tokenizer that produced the ids (when it can be saved)
    train-00000.bin            token ids of consecutive documents, raw uint16 / uint32
    train-00000.idx.npy        int64 (docs + 1,): document boundaries in that shard (cumsum)
    validation-00000.bin ...   the same for the validation split
    validation_documents.npy   int64: corpus index of each validation document (sorted)

Streaming: documents are read and tokenised in bounded batches (tokenizers' encode_batch,
multi-threaded in Rust) and appended to the open shard, which is closed once it holds
`shard_tokens` tokens; memory stays bounded by one batch plus one document, whatever the
corpus size. A document never spans two shards (one longer than `shard_tokens` gets a shard
of its own). Ids are uint16 when vocab_size <= 65536, else uint32 (nanoGPT's trick: half the
disk and page cache of int32).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from array import array
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tokenizers

from unmask.data.corpus import Corpus, DecodingWarning, DocumentMode, PathType

__all__ = [
    "TokenShards",
    "prepare_shards",
    "token_dtype",
    "train_tokenizer",
    "write_token_shards",
]

MANIFEST = "manifest.json"
FORMAT = "unmask-token-shards"
VERSION = 1
SPLITS = ("train", "validation")
VALIDATION_DOCUMENTS = "validation_documents.npy"
_ROLE_GUESSES = {  # token names tried when a raw tokenizers.Tokenizer does not say its roles
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>"),
}
_REQUIRED_ROLES = ("cls", "sep", "pad")  # packing wraps segments in cls/sep and pads rows


def token_dtype(vocab_size: int) -> np.dtype:
    """np.dtype for token ids: uint16 when every id fits (vocab_size <= 65536), else uint32."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if vocab_size < 1 or vocab_size > 2**32:
        raise ValueError(f"vocab_size must be in [1, 2**32], got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


# --------------------------------------------------------------------------------- tokenizer
class _Encoder:
    """The little prepare needs from a tokenizer: texts -> id lists (no specials), vocab size,
    special ids, and a way to save it next to the shards."""

    def __init__(self, tokenizer: Any, special_tokens: dict[str, str] | None = None):
        if isinstance(tokenizer, (str, PathLike)):
            path = Path(tokenizer)
            path = path / "tokenizer.json" if path.is_dir() else path
            if not path.is_file():
                raise FileNotFoundError(f"no tokenizer at {path}; pass a tokenizer.json path")
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        self.owner = tokenizer
        self.backend: tokenizers.Tokenizer | None = None
        backend = getattr(tokenizer, "backend", tokenizer)  # what an unmask Tokenizer wraps
        if isinstance(backend, tokenizers.Tokenizer):
            # A copy: a tokenizer.json may fix truncation and padding (MiniLM's pads and cuts
            # everything to 128), which would silently cut documents; we must not mutate the
            # caller's object to switch them off.
            self.backend = tokenizers.Tokenizer.from_str(backend.to_str())
            self.backend.no_truncation()
            self.backend.no_padding()
            self.vocab_size = int(self.backend.get_vocab_size(with_added_tokens=True))
        elif not callable(getattr(tokenizer, "encode_batch", None)):
            raise TypeError(
                f"tokenizer must be a tokenizers.Tokenizer, an unmask Tokenizer, a path to "
                f"tokenizer.json, or an object with encode_batch(texts, "
                f"add_special_tokens=False); got {type(tokenizer).__name__}"
            )
        else:
            size = getattr(tokenizer, "vocab_size", None)
            size = size() if callable(size) else size
            if size is None and callable(getattr(tokenizer, "get_vocab_size", None)):
                size = tokenizer.get_vocab_size()
            if not isinstance(size, (int, np.integer)):
                raise TypeError(
                    f"cannot tell the vocabulary size of {type(tokenizer).__name__}: give it a "
                    "vocab_size attribute or get_vocab_size()"
                )
            self.vocab_size = int(size)
        self.special_ids = self._special_ids(tokenizer, special_tokens or {})

    def _special_ids(self, tokenizer: Any, given: dict[str, str]) -> dict[str, int | None]:
        ids: dict[str, int | None] = {}
        for role, guesses in _ROLE_GUESSES.items():
            value = None
            if role in given:
                value = self.backend.token_to_id(given[role]) if self.backend else None
                if value is None:
                    raise ValueError(f"special token {given[role]!r} ({role}) is not in the vocabulary")
            if value is None and not isinstance(tokenizer, tokenizers.Tokenizer):
                try:
                    value = getattr(tokenizer, f"{role}_token_id", None)
                except (ValueError, KeyError, AttributeError):  # role missing in that tokenizer
                    value = None
            if value is None and self.backend is not None:
                found = (self.backend.token_to_id(name) for name in guesses)
                value = next((i for i in found if i is not None), None)
            ids[role] = None if value is None else int(value)
        missing = [r for r in _REQUIRED_ROLES if ids[r] is None]
        if missing:
            raise ValueError(
                f"the tokenizer has no {missing} token(s), which packing needs to wrap and pad "
                "documents; pass special_tokens={'cls': '[CLS]', 'sep': '[SEP]', 'pad': '[PAD]'} "
                "naming tokens of its vocabulary"
            )
        return ids

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.backend is not None:
            # encode_batch_fast skips the offsets, which shards do not keep
            encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
            return [e.ids for e in encode(texts, add_special_tokens=False)]
        out = self.owner.encode_batch(texts, add_special_tokens=False)
        if hasattr(out, "keys"):  # a dict or transformers' BatchEncoding
            out = out["input_ids"]
        return [list(getattr(e, "ids", e)) for e in out]

    def save(self, directory: Path) -> dict:
        kind = f"{type(self.owner).__module__}.{type(self.owner).__name__}"
        if self.backend is None:
            return {"type": kind, "file": None}
        if callable(getattr(self.owner, "save", None)) and not isinstance(
            self.owner, tokenizers.Tokenizer
        ):
            self.owner.save(directory)  # unmask Tokenizer: tokenizer.json + its configs
        else:
            self.backend.save(str(directory / "tokenizer.json"))
        sha256 = hashlib.sha256((directory / "tokenizer.json").read_bytes()).hexdigest()
        return {"type": kind, "file": "tokenizer.json", "sha256": sha256}


# --------------------------------------------------------------------------------- writing
class _SplitWriter:
    """Appends documents of one split to numbered shard files."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int):
        self.directory, self.split, self.dtype = directory, split, dtype
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []
        self._file = None
        self._offsets = array("q", [0])  # 8 bytes per document of the open shard

    def add(self, ids: np.ndarray) -> None:
        if self._file is None or (
            self._offsets[-1] > 0 and self._offsets[-1] + len(ids) > self.shard_tokens
        ):
            self._roll()
        self._file.write(ids.tobytes())
        self._offsets.append(self._offsets[-1] + len(ids))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def _roll(self) -> None:
        self._close_shard()
        name = f"{self.split}-{len(self.shards):05d}"
        # held open across add() calls, closed by _close_shard
        self._file = open(self.directory / f"{name}.bin", "wb")  # noqa: SIM115
        self._offsets = array("q", [0])
        self.shards.append({"file": f"{name}.bin", "index": f"{name}.idx.npy"})

    def _close_shard(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        entry = self.shards[-1]
        np.save(self.directory / entry["index"], np.frombuffer(self._offsets, dtype=np.int64))
        entry.update(num_tokens=int(self._offsets[-1]), num_documents=len(self._offsets) - 1)

    def close(self) -> dict:
        self._close_shard()
        return {
            "num_tokens": sum(s["num_tokens"] for s in self.shards),
            "num_documents": sum(s["num_documents"] for s in self.shards),
            "shards": self.shards,
        }


def _check_target(directory: Path, overwrite: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} is a file; give a directory for the shards")
    directory.mkdir(parents=True, exist_ok=True)
    ours = [
        p for p in directory.iterdir()
        if p.name in (MANIFEST, VALIDATION_DOCUMENTS)
        or (p.name.startswith(SPLITS) and p.name.endswith((".bin", ".idx.npy")))
    ]
    if ours and not overwrite:
        raise FileExistsError(
            f"{directory} already holds token shards ({ours[0].name}, ...); pass --overwrite "
            "(overwrite=True) to replace them, or choose another directory"
        )
    for p in ours:  # only files this module writes; anything else of the user's stays
        p.unlink()


def _validation_indices(n_docs: int, validation: float, seed: int) -> np.ndarray:
    """Sorted int64 corpus indices of the validation documents, chosen by a seeded draw."""
    if isinstance(validation, bool) or not isinstance(validation, (int, float, np.number)):
        raise TypeError(f"validation must be a fraction (float) or a count (int), got {validation!r}")
    if isinstance(validation, (float, np.floating)):
        if not 0.0 <= validation < 1.0:
            raise ValueError(
                f"validation={validation} as a fraction must be in [0, 1); use an int for a count"
            )
        # at least one document when a fraction is asked for, else the split silently vanishes
        k = max(1, round(validation * n_docs)) if validation > 0 else 0
    else:
        if validation < 0:
            raise ValueError(f"validation count must be >= 0, got {validation}")
        k = int(validation)
    if k and k >= n_docs:
        raise ValueError(
            f"validation takes {k} of {n_docs} documents, leaving none to train on; "
            "ask for fewer validation documents or give a larger corpus"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_docs, size=k, replace=False)).astype(np.int64)


def _write_manifest(directory: Path, dtype: np.dtype, **fields: Any) -> dict:
    """Write manifest.json (format, version, dtype, then `fields` in order) last; returns it."""
    manifest = {"format": FORMAT, "version": VERSION, "dtype": dtype.name, **fields}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, directory / MANIFEST)  # atomic: a manifest is never half-written
    return manifest


def prepare_shards(
    corpus: Corpus | PathType | Sequence[PathType],
    tokenizer: Any,
    out_dir: PathType,
    *,
    documents: DocumentMode = "file",
    text_field: str = "text",
    validation: float = 0,
    seed: int = 0,
    shard_tokens: int = 100_000_000,
    batch_chars: int = 2_000_000,
    batch_documents: int = 1024,
    special_tokens: dict[str, str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Tokenise a corpus into token shards under `out_dir`; returns the manifest (dict).

    corpus: a `Corpus`, or files / folders / glob patterns (then `documents` and `text_field`
    choose how they are read, see `Corpus`).
    tokenizer: a `tokenizers.Tokenizer`, an `unmask.tokenizer.Tokenizer`, a tokenizer.json
    path, or any object with `encode_batch(texts, add_special_tokens=False)` and
    `vocab_size`/`cls_token_id`/`sep_token_id`/`pad_token_id`. Ids are stored without
    special tokens; packing adds [CLS]/[SEP] per segment. Truncation and padding configured in
    a tokenizer.json are ignored (documents are never cut).
    validation: fraction of documents (float in [0, 1)) or number of documents (int) put in the
    "validation" split, chosen by `seed`; whole documents only. Needs one extra pass over the
    corpus to count documents.
    shard_tokens: tokens per shard file before a new one starts.
    batch_chars, batch_documents: a batch sent to the tokenizer closes at whichever limit it
    reaches first; together with one document they bound memory.
    special_tokens: role -> token string (cls, sep, pad, mask, unk) when names are unusual.

    The manifest records dtype, vocab_size, special_ids, per-split num_tokens/num_documents
    and shards, tokenizer info, the corpus files, and the throughput of this run.
    """
    start = time.perf_counter()
    if not isinstance(corpus, Corpus):
        corpus = Corpus(corpus, documents=documents, text_field=text_field)
    for name, value in (("shard_tokens", shard_tokens), ("batch_chars", batch_chars),
                        ("batch_documents", batch_documents)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    encoder = _Encoder(tokenizer, special_tokens)
    dtype = token_dtype(encoder.vocab_size)
    out = Path(out_dir)
    _check_target(out, overwrite)

    val_index = np.zeros(0, dtype=np.int64)
    if validation:
        with warnings.catch_warnings():  # the tokenising pass warns about each file once
            warnings.simplefilter("ignore", DecodingWarning)
            n_total = corpus.count()
        val_index = _validation_indices(n_total, validation, seed)
    is_val = set(val_index.tolist())
    writers = {"train": _SplitWriter(out, "train", dtype, shard_tokens)}
    if len(val_index):
        writers["validation"] = _SplitWriter(out, "validation", dtype, shard_tokens)

    n_docs = 0
    batch: list[str] = []  # the documents n_docs - len(batch) .. n_docs - 1
    chars = 0

    def flush() -> None:
        first = n_docs - len(batch)
        for i, ids in zip(range(first, n_docs), encoder.encode(batch), strict=True):
            arr = np.asarray(ids, dtype=np.int64)
            if len(arr) and (arr.min() < 0 or arr.max() >= encoder.vocab_size):
                raise ValueError(
                    f"document {i}: the tokenizer produced id {int(arr.max())} but says its "
                    f"vocabulary has {encoder.vocab_size} ids; fix its vocab_size"
                )
            writers["validation" if i in is_val else "train"].add(arr.astype(dtype))
        for w in writers.values():
            w.flush()  # on disk per batch: a crash loses one batch, not the page cache
        batch.clear()

    for text in corpus:
        batch.append(text)
        n_docs += 1
        chars += len(text)
        if chars >= batch_chars or len(batch) >= batch_documents:
            flush()
            chars = 0
    if batch:
        flush()
    if n_docs == 0:
        raise ValueError(f"the corpus {corpus!r} holds no documents (all files empty?)")
    if len(val_index) and int(val_index[-1]) >= n_docs:
        raise ValueError("the corpus changed between the counting pass and the tokenising pass")

    splits = {name: w.close() for name, w in writers.items()}
    if len(val_index):
        np.save(out / VALIDATION_DOCUMENTS, val_index)
    seconds = time.perf_counter() - start
    total = sum(s["num_tokens"] for s in splits.values())
    return _write_manifest(
        out,
        dtype,
        vocab_size=encoder.vocab_size,
        special_ids=encoder.special_ids,
        tokenizer=encoder.save(out),
        corpus={
            "files": [str(f) for f in corpus.files],
            "documents": corpus.documents,
            "text_field": corpus.text_field,
            "num_documents": n_docs,
        },
        validation={
            "requested": validation,
            "seed": seed,
            "num_documents": len(val_index),
            "index": VALIDATION_DOCUMENTS if len(val_index) else None,
        },
        shard_tokens=shard_tokens,
        splits=splits,
        prepare={"seconds": round(seconds, 3), "tokens_per_second": round(total / seconds)},
    )


def write_token_shards(
    out_dir: PathType,
    splits: dict[str, Iterable[Sequence[int] | np.ndarray]],
    *,
    vocab_size: int,
    special_ids: dict[str, int | None],
    shard_tokens: int = 100_000_000,
    tokenizer_info: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Write already tokenised documents as shards; returns the manifest (dict).

    splits: {"train": docs, "validation": docs}, each an iterable of 1-D integer id sequences
    (no special tokens), streamed to disk. special_ids: at least {"cls", "sep", "pad"} -> int.
    Useful for ids from another pipeline, and for tests.
    """
    unknown = set(splits) - set(SPLITS)
    if unknown or "train" not in splits:
        raise ValueError(f"splits must have a 'train' key and may add 'validation'; got {sorted(splits)}")
    missing = [r for r in _REQUIRED_ROLES if special_ids.get(r) is None]
    if missing:
        raise ValueError(f"special_ids needs {missing}, e.g. {{'cls': 2, 'sep': 3, 'pad': 0}}")
    dtype = token_dtype(vocab_size)
    for role, i in special_ids.items():
        if i is not None and not 0 <= int(i) < vocab_size:
            raise ValueError(f"special id {role}={i} is outside the vocabulary [0, {vocab_size})")
    out = Path(out_dir)
    _check_target(out, overwrite)
    result = {}
    for name, docs in splits.items():
        writer = _SplitWriter(out, name, dtype, shard_tokens)
        for k, ids in enumerate(docs):
            arr = np.asarray(ids)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise ValueError(f"{name} document {k}: expected a 1-D sequence of int ids")
            if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                raise ValueError(
                    f"{name} document {k}: ids must be in [0, {vocab_size}), got "
                    f"[{arr.min()}, {arr.max()}]"
                )
            writer.add(arr.astype(dtype))
        result[name] = writer.close()
    return _write_manifest(
        out,
        dtype,
        vocab_size=int(vocab_size),
        special_ids={r: None if special_ids.get(r) is None else int(special_ids[r])
                     for r in _ROLE_GUESSES},
        tokenizer=tokenizer_info or {"type": None, "file": None},
        shard_tokens=shard_tokens,
        splits=result,
    )


# --------------------------------------------------------------------------------- reading
class TokenShards:
    """One split of a prepared directory, read through numpy memory maps (nothing loaded).

    directory: what `prepare_shards` wrote. split: "train" or "validation".

    Attributes: dtype (np.dtype), vocab_size, special_ids ({"cls", "sep", "pad", "mask", "unk"}
    -> int or None), cls_id / sep_id / pad_id, num_tokens, num_documents, shards (list of
    1-D np.memmap, one per shard file), document_lengths (int64 (num_documents,)).
    `shards[i]` is document i as a read-only 1-D array of ids (a view into the memmap);
    `len(shards)` is the number of documents.
    """

    def __init__(self, directory: PathType, split: str = "train"):
        self.directory = Path(directory)
        path = self.directory / MANIFEST
        if not path.is_file():
            hint = (
                "it has shard files but no manifest, so the prepare run did not finish"
                if self.directory.is_dir() and any(self.directory.glob("*.bin"))
                else "run prepare_shards (or `unmask prepare`) first"
            )
            raise FileNotFoundError(f"{self.directory} has no {MANIFEST}: {hint}")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); prepare the shards again") from None
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is not an unmask token-shard manifest")
        if self.manifest.get("version", 0) > VERSION:
            raise ValueError(
                f"{path} has format version {self.manifest['version']}, newer than this unmask "
                f"reads ({VERSION}); upgrade unmask"
            )
        splits = self.manifest["splits"]
        if split not in splits:
            raise KeyError(f"{self.directory} has no {split!r} split; it has {sorted(splits)}")
        self.split = split
        self.dtype = np.dtype(self.manifest["dtype"])
        self.vocab_size = int(self.manifest["vocab_size"])
        self.special_ids = dict(self.manifest["special_ids"])
        self.cls_id, self.sep_id, self.pad_id = (int(self.special_ids[r]) for r in _REQUIRED_ROLES)
        info = splits[split]
        self.num_tokens = int(info["num_tokens"])
        self.num_documents = int(info["num_documents"])
        self.shards: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        for entry in info["shards"]:
            bin_path = self.directory / entry["file"]
            expected = entry["num_tokens"] * self.dtype.itemsize
            found = bin_path.stat().st_size if bin_path.is_file() else "missing"
            if found != expected:
                raise ValueError(
                    f"{bin_path}: expected {expected} bytes, found {found}; the shard is "
                    "truncated or was modified, prepare the shards again"
                )
            offsets = np.load(self.directory / entry["index"], mmap_mode="r")
            if len(offsets) != entry["num_documents"] + 1 or int(offsets[-1]) != entry["num_tokens"]:
                raise ValueError(f"{entry['index']} does not match {entry['file']}; prepare again")
            # np.memmap refuses empty files; an empty shard is only zero-token documents
            tokens = (
                np.memmap(bin_path, dtype=self.dtype, mode="r")
                if expected else np.zeros(0, dtype=self.dtype)
            )
            self.shards.append(tokens)
            self._offsets.append(offsets)
        counts = [len(o) - 1 for o in self._offsets]
        self._first_doc = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (S+1,)

    @staticmethod
    def splits(directory: PathType) -> list[str]:
        """Names of the splits in a prepared directory, e.g. ["train", "validation"]."""
        return sorted(json.loads((Path(directory) / MANIFEST).read_text())["splits"])

    def __len__(self) -> int:
        return self.num_documents

    def __repr__(self) -> str:
        return (
            f"TokenShards({str(self.directory)!r}, split={self.split!r}: "
            f"{self.num_documents} documents, {self.num_tokens} tokens, {self.dtype.name}, "
            f"{len(self.shards)} shard(s))"
        )

    @property
    def document_lengths(self) -> np.ndarray:
        """int64 (num_documents,): tokens per document, in split order."""
        lengths = [np.diff(o) for o in self._offsets]
        return np.concatenate([np.zeros(0, np.int64), *lengths]).astype(np.int64)

    def locate(self, i: int) -> tuple[int, int, int]:
        """(shard, start, end) of document i: its ids are shards[shard][start:end]."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"document index must be an int, got {type(i).__name__}")
        n = self.num_documents
        if not -n <= i < n:
            raise IndexError(f"document {i} out of range for {n} documents")
        i = int(i) % n
        s = int(np.searchsorted(self._first_doc, i, side="right")) - 1
        local = i - int(self._first_doc[s])
        offsets = self._offsets[s]
        return s, int(offsets[local]), int(offsets[local + 1])

    def __getitem__(self, i: int) -> np.ndarray:
        s, start, end = self.locate(i)
        return self.shards[s][start:end]

    def __iter__(self):
        for i in range(self.num_documents):
            yield self[i]

    def source_indices(self) -> np.ndarray:
        """int64 (num_documents,): each document's index in the corpus it was prepared from."""
        total = self.manifest.get("corpus", {}).get("num_documents")
        if total is None:
            raise ValueError("these shards were written from ids (write_token_shards): no corpus index")
        index_file = self.manifest["validation"]["index"]
        val = np.load(self.directory / index_file) if index_file else np.zeros(0, np.int64)
        if self.split == "validation":
            return val.astype(np.int64)
        return np.setdiff1d(np.arange(total, dtype=np.int64), val)  # the rest, sorted


# --------------------------------------------------------------------------------- training
def train_tokenizer(
    corpus: Corpus | PathType | Sequence[PathType],
    vocab_size: int = 30522,
    kind: Literal["wordpiece", "bpe", "unigram"] = "wordpiece",
    *,
    out_dir: PathType | None = None,
    documents: DocumentMode = "file",
    text_field: str = "text",
    lowercase: bool = True,
    min_frequency: int = 2,
):
    """Train a tokenizer on the corpus you are about to prepare; returns unmask Tokenizer.

    kind "wordpiece" builds BERT's pipeline with [PAD] [UNK] [CLS] [SEP] [MASK] as ids 0-4
    (see `unmask.tokenizer.Tokenizer.train_from_iterator` for "bpe" / "unigram").
    out_dir: if given, tokenizer.json (plus configs transformers reads) is saved there.
    The corpus is streamed line by line, so it need not fit in memory.
    """
    from unmask.tokenizer import Tokenizer  # lazy: keeps `unmask.data` importable on its own

    if not isinstance(corpus, Corpus):
        corpus = Corpus(corpus, documents=documents, text_field=text_field)

    # Lines, not whole books: the trainer parallelises over strings, and BERT-style
    # pre-tokenisation splits on newlines anyway, so word counts are the same.
    lines = (line for doc in corpus for line in doc.splitlines() if line.strip())
    tok = Tokenizer.train_from_iterator(
        lines, kind=kind, vocab_size=vocab_size, lowercase=lowercase,
        min_frequency=min_frequency,
    )
    if out_dir is not None:
        tok.save(out_dir)
    return tok
