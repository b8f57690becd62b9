"""Text -> token ids for masked language models: a thin layer over Hugging Face `tokenizers`.

WordPiece, BPE and Unigram, padding, truncation, overflow windows, offsets, word ids and pair
templates all run in the Rust `tokenizers` library. This package loads checkpoints the way
transformers does (unmask.tokenizer.files, unmask.tokenizer.spm), trains new tokenizers, names
the special tokens' roles, and hands encodings out as the arrays a model takes.

Axis legend:  N = rows of a batch (one per text, or per window with overflow),  L = tokens per
row (the longest row, or max_length). BatchEncoding lists the fields, their dtypes and the
values they take at specials and padding.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from itertools import chain
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tokenizers
import torch
from tokenizers import (
    AddedToken,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from unmask.tokenizer.files import (
    BERT_SPECIALS,
    ROBERTA_SPECIALS,
    ROLES,
    WHAT_A_TOKENIZER_IS,
    bert_template,
    from_directory,
    read_config,
    read_tokenizer_json,
)

__all__ = ["BatchEncoding", "Tokenizer", "read_text"]

# Names tried, in order, when a checkpoint does not say which token plays which role.
_ROLE_GUESSES = {
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>"),
}
_KINDS = ("wordpiece", "bpe", "unigram")
_ONLY = ("only_first", "only_second")

PathType = str | PathLike


def read_text(path: PathType) -> str:
    """Read a text file as str: UTF-8, else cp1252, else latin-1 (which never fails).

    Old corpora (Gutenberg, speeches) are often cp1252; decoding them as UTF-8 with
    errors="ignore" would silently drop characters, so fall back to a full decoding instead.
    """
    data = Path(path).read_bytes()
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


class BatchEncoding(Mapping):
    """The output of `Tokenizer.encode_batch`: one row per text, or per window with overflow.

    Read fields as attributes or keys (`batch.input_ids`, `batch["input_ids"]`). Padded
    (the default), every field is a torch tensor:

    - input_ids            int64 (N, L)
    - attention_mask       bool  (N, L), True = real token (may attend), False = padding
    - token_type_ids       int64 (N, L), 0 for the first text, 1 for the second of a pair
    - special_tokens_mask  bool  (N, L), True for [CLS]/[SEP]/<s>/... and padding
    - offsets              int64 (N, L, 2), (start, end) character span in the source text;
                           (0, 0) for specials and padding; with is_split_into_words, the
                           span is inside the word
    - word_ids             int64 (N, L), index of the word a token comes from, -1 for
                           specials and padding
    - sequence_ids         int64 (N, L), 0 or 1 (which text of a pair), -1 for specials/padding
    - overflow_to_sample_mapping  int64 (N,), the input text each row comes from (the
                           identity without overflow windows)

    Unpadded (padding=False), the same fields are Python lists of per-row lists (offsets as
    lists of (start, end) tuples, masks as bools) and overflow_to_sample_mapping is a list of
    int. Fields are built on first access, so unused ones (offsets, word ids) cost nothing.
    """

    _KEYS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offsets",
             "word_ids", "sequence_ids", "overflow_to_sample_mapping")

    def __init__(self, encodings: list[tokenizers.Encoding], sample_mapping: list[int],
                 padded: bool):
        self.encodings = encodings  # the raw tokenizers.Encoding objects, one per row
        self._sample_mapping = sample_mapping
        self.padded = padded  # True: rectangular tensors; False: lists

    # Mapping protocol, so batch["input_ids"] and dict(batch) work as with transformers.
    def __getitem__(self, key: str):
        if key not in self._KEYS:
            raise KeyError(f"{key!r}; a BatchEncoding has {', '.join(self._KEYS)}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return f"BatchEncoding(rows={len(self.encodings)}, padded={self.padded})"

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and token_type_ids: the arguments an encoder takes."""
        return {k: self[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    def _field(self, name: str, *width: int):
        rows = [getattr(e, name) for e in self.encodings]
        if name in ("word_ids", "sequence_ids"):  # None for specials and padding -> -1
            rows = [[-1 if v is None else v for v in row] for row in rows]
        if not self.padded:
            return rows
        n, length = len(rows), len(rows[0]) if rows else 0
        flat = chain.from_iterable(chain.from_iterable(rows) if width else rows)
        out = np.fromiter(flat, np.int64, count=n * length * (width[0] if width else 1))
        return torch.from_numpy(out.reshape(n, length, *width))

    def _mask(self, name: str):
        out = self._field(name)
        return out.bool() if self.padded else [[v == 1 for v in row] for row in out]

    input_ids = cached_property(lambda self: self._field("ids"))
    attention_mask = cached_property(lambda self: self._mask("attention_mask"))
    token_type_ids = cached_property(lambda self: self._field("type_ids"))
    special_tokens_mask = cached_property(lambda self: self._mask("special_tokens_mask"))
    offsets = cached_property(lambda self: self._field("offsets", 2))
    word_ids = cached_property(lambda self: self._field("word_ids"))
    sequence_ids = cached_property(lambda self: self._field("sequence_ids"))

    @cached_property
    def overflow_to_sample_mapping(self):
        mapping = list(self._sample_mapping)
        return torch.tensor(mapping, dtype=torch.long) if self.padded else mapping


class Tokenizer:
    """A tokenizer for masked language models, backed by a `tokenizers.Tokenizer`.

    Build one with `from_pretrained(directory or hub id)`, `from_file("tokenizer.json")` or
    `train(files, kind=...)`. `special_tokens` maps roles ("cls", "sep", "pad", "mask", "unk")
    to token strings; roles not given are guessed from the usual names ([CLS], <s>, ...).
    A backend passed in directly is used as is, except that its fixed truncation and padding
    are switched off (encode_batch sets them per call).
    """

    def __init__(self, backend: tokenizers.Tokenizer,
                 special_tokens: Mapping[str, str] | None = None,
                 model_max_length: int | None = None):
        if not isinstance(backend, tokenizers.Tokenizer):
            raise TypeError(
                f"backend must be a tokenizers.Tokenizer, got {type(backend).__name__}; "
                "to load files use Tokenizer.from_pretrained(directory) or Tokenizer.from_file")
        # Truncation and padding are per call (encode_batch); a tokenizer.json may carry fixed
        # ones (MiniLM's pads everything to 128), which would silently change every encoding.
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend
        self.model_max_length = model_max_length
        self._special_tokens = self._resolve_roles(dict(special_tokens or {}))
        # Role tokens must be "special" in the backend so that the normaliser never splits
        # them, decode(skip_special_tokens=True) drops them and special_tokens_mask marks them.
        added = {t.content for t in backend.get_added_tokens_decoder().values()}
        backend.add_special_tokens([
            # RoBERTa's <mask> eats the space before it, so "a <mask>" works as "a[MASK]".
            AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>")
            for t in self._special_tokens.values() if t not in added])
        # encode_batch sets truncation and padding on the shared Rust tokenizer: one at a time.
        self._lock = threading.Lock()

    def _resolve_roles(self, given: dict[str, str]) -> dict[str, str]:
        unknown = set(given) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown special token role(s) {sorted(unknown)}; "
                             f"the roles are {list(ROLES)}")
        for role, token in given.items():
            if self._backend.token_to_id(token) is None:
                raise ValueError(
                    f"special_tokens[{role!r}] = {token!r} is not in the vocabulary; "
                    "pick a token the vocabulary has or add it to the tokenizer first")
        guessed = {role: next((t for t in _ROLE_GUESSES[role]
                               if self._backend.token_to_id(t) is not None), None)
                   for role in ROLES if role not in given}
        return {**{r: t for r, t in guessed.items() if t is not None}, **given}

    # ----------------------------------------------------------------------------- vocabulary
    @property
    def special_tokens(self) -> dict[str, str]:
        """Role -> token string, e.g. {"cls": "[CLS]", "mask": "[MASK]", ...}."""
        return dict(self._special_tokens)

    def _role_id(self, role: str) -> int:
        token = self._special_tokens.get(role)
        if token is None:
            raise ValueError(
                f"this tokenizer has no {role} token (none of {list(_ROLE_GUESSES[role])} is in "
                f"its vocabulary); pass special_tokens={{{role!r}: '<token>'}} when loading it")
        return self._backend.token_to_id(token)

    mask_token_id = property(lambda self: self._role_id("mask"),
                             doc="Id of the mask token ([MASK] / <mask>); ValueError if none.")
    pad_token_id = property(lambda self: self._role_id("pad"),
                            doc="Id of the padding token; ValueError if the tokenizer has none.")
    cls_token_id = property(lambda self: self._role_id("cls"),
                            doc="Id of the first token of every sequence ([CLS] / <s>).")
    sep_token_id = property(lambda self: self._role_id("sep"),
                            doc="Id of the separator / end token ([SEP] / </s>).")
    unk_token_id = property(lambda self: self._role_id("unk"),
                            doc="Id of the unknown token ([UNK] / <unk>).")

    @property
    def special_ids(self) -> set[int]:
        """Ids of every special token (roles and other added special tokens)."""
        ids = {i for i, t in self._backend.get_added_tokens_decoder().items() if t.special}
        return ids | {self._backend.token_to_id(t) for t in self._special_tokens.values()}

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included: the row count an embedding matrix needs."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer` (for options this layer does not wrap)."""
        return self._backend

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary, added tokens included."""
        return self._backend.get_vocab(with_added_tokens=True)

    def token_to_id(self, token: str) -> int:
        """Id of `token`; KeyError if it is not in the vocabulary (no silent [UNK])."""
        i = self._backend.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary; tokenize() splits free text")
        return i

    def id_to_token(self, id: int) -> str:
        """Token string of `id`; KeyError if the id is outside [0, vocab_size)."""
        token = self._backend.id_to_token(int(id)) if int(id) >= 0 else None
        if token is None:
            raise KeyError(f"id {id} is outside the vocabulary [0, {self.vocab_size})")
        return token

    def __repr__(self) -> str:
        return (f"Tokenizer({type(self._backend.model).__name__}, vocab_size={self.vocab_size}, "
                f"special_tokens={self._special_tokens}, "
                f"model_max_length={self.model_max_length})")

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: PathType,
                        special_tokens: Mapping[str, str] | None = None,
                        model_max_length: int | None = None,
                        revision: str | None = None) -> Tokenizer:
        """Load the tokenizer of a Hugging Face checkpoint: a directory, a hub id
        ("microsoft/deberta-v3-base", fetched by unmask.checkpoints.resolve) or a
        tokenizer.json file.

        Files, options and special tokens are read as unmask.tokenizer.files describes;
        `special_tokens` and `model_max_length` override them; revision is the branch, tag or
        commit of a hub id. Role tokens the checkpoint names but its vocabulary lacks
        (DeBERTa-v3's [MASK]) are added after the vocabulary.
        """
        path = Path(name_or_path).expanduser()
        if path.is_file():
            return cls.from_file(path, special_tokens, model_max_length)
        directory = path if path.is_dir() else _hub_directory(name_or_path, revision)
        config = read_config(directory)
        backend, required = from_directory(directory, config)
        for token in config.added_tokens:  # in id order (a token in the vocabulary keeps its id)
            (backend.add_special_tokens if token.special else backend.add_tokens)([token])
        declared = {**required, **config.special_tokens}
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t in dict.fromkeys(declared.values())
                                    if backend.token_to_id(t) is None])
        limit = (model_max_length or config.model_max_length
                 or (backend.truncation or {}).get("max_length"))  # what the saver meant
        return cls(backend, {**declared, **(special_tokens or {})}, limit)

    @classmethod
    def from_file(cls, path: PathType, special_tokens: Mapping[str, str] | None = None,
                  model_max_length: int | None = None) -> Tokenizer:
        """Load a tokenizer.json file (any model type the `tokenizers` library supports)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; expected a tokenizer.json file "
                                    "(for a checkpoint directory use Tokenizer.from_pretrained)")
        backend = read_tokenizer_json(path)
        limit = model_max_length or (backend.truncation or {}).get("max_length")
        return cls(backend, special_tokens, limit)

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(cls, files: PathType | Iterable[PathType], **options: Any) -> Tokenizer:
        """Train a new tokenizer on text files (UTF-8, else cp1252 / latin-1), line by line.

        options: those of `train_from_iterator` (kind, vocab_size, lowercase, ...).
        """
        paths = [Path(files)] if isinstance(files, (str, PathLike)) else [Path(f) for f in files]
        missing = [str(p) for p in paths if not p.is_file()]
        if not paths or missing:
            raise FileNotFoundError(f"training files not found: {missing or 'none given'}")
        lines = (line for path in paths for line in read_text(path).splitlines())
        return cls.train_from_iterator(lines, **options)

    @classmethod
    def train_from_iterator(
        cls,
        texts: Iterable[str],
        kind: Literal["wordpiece", "bpe", "unigram"] = "wordpiece",
        vocab_size: int = 30522,
        lowercase: bool = True,
        special_tokens: Literal["bert", "roberta"] | None = None,
        min_frequency: int = 2,
        model_max_length: int = 512,
        show_progress: bool = False,
    ) -> Tokenizer:
        """Train a new tokenizer on an iterable of str.

        kind: "wordpiece" (BERT pipeline: BertNormalizer, BertPreTokenizer, ## subwords),
        "bpe" (byte-level, as RoBERTa: never produces an unknown token) or "unigram"
        (NFKC, Metaspace "▁" word boundaries, as ALBERT/T5).
        special_tokens: "bert" ([PAD] [UNK] [CLS] [SEP] [MASK], ids 0-4) or "roberta"
        (<s> <pad> </s> <unk> <mask>, ids 0-4); None picks "roberta" for bpe, else "bert".
        A post-processor adds them around each sequence / pair.
        """
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        style = special_tokens or ("roberta" if kind == "bpe" else "bert")
        names = {"bert": BERT_SPECIALS, "roberta": ROBERTA_SPECIALS}.get(style)
        if names is None:
            raise ValueError(f"special_tokens must be 'bert' or 'roberta', got {special_tokens!r}")
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of str, not one str; wrap it in a list, "
                            "or use Tokenizer.train(files) for file paths")
        specials = list(names.values())  # ids 0..4 in this order
        backend, trainer = _pipeline(kind, lowercase, vocab_size, min_frequency, specials,
                                     names["unk"], show_progress)
        backend.train_from_iterator(texts, trainer=trainer)
        ids = backend.get_vocab()
        if kind == "bpe" and style == "roberta":
            backend.post_processor = processors.RobertaProcessing(
                (names["sep"], ids[names["sep"]]), (names["cls"], ids[names["cls"]]),
                trim_offsets=True, add_prefix_space=False)
        else:
            template = bert_template(names["cls"], names["sep"], ids,
                                     pair_type_id=int(style == "bert"),
                                     roberta_pair=style == "roberta")
            if kind == "bpe":  # byte-level tokens carry their leading space: trim offsets first
                template = processors.Sequence([processors.ByteLevel(trim_offsets=True), template])
            backend.post_processor = template
        return cls(backend, names, model_max_length)

    # ----------------------------------------------------------------------------- saving
    def save(self, directory: PathType) -> Path:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json.

        transformers reads the result with AutoTokenizer.from_pretrained(directory)
        (as a PreTrainedTokenizerFast). Returns the directory.
        """
        directory = Path(directory)
        if directory.is_file():
            raise FileExistsError(f"{directory} is a file; save() needs a directory path")
        directory.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(directory / "tokenizer.json"))
        special_map = {f"{r}_token": t for r, t in self._special_tokens.items()}
        if self._special_tokens.get("cls") == "<s>":
            special_map.update(bos_token="<s>", eos_token=self._special_tokens.get("sep", "</s>"))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": self.model_max_length or int(1e30),
            # The tokenizer.json decoder already does WordPiece clean-up; doing it twice
            # (or for BPE, at all) corrupts text such as "don 't".
            "clean_up_tokenization_spaces": False,
            **special_map,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
        return directory

    # ----------------------------------------------------------------------------- encoding
    def encode_batch(
        self,
        texts: Sequence[str] | Sequence[tuple[str, str]] | Sequence[Sequence[str]],
        max_length: int | None = None,
        truncation: bool | Literal["longest_first", "only_first", "only_second"] = True,
        stride: int = 0,
        return_overflowing: bool = False,
        add_special_tokens: bool = True,
        padding: bool | Literal["longest", "max_length"] = "longest",
        pad_to_multiple_of: int | None = None,
        is_split_into_words: bool = False,
    ) -> BatchEncoding:
        """Encode texts, or (text, text_pair) tuples, into a BatchEncoding (see its fields).

        max_length: longest row in tokens, specials included; None = model_max_length.
        truncation: True ("longest_first": trim the longer text of a pair first),
          "only_first", "only_second" (e.g. question, context for QA), or False.
        stride, return_overflowing: with return_overflowing, text cut by truncation is
          not dropped but continued in extra rows (windows) that repeat the last `stride`
          tokens of the previous window; overflow_to_sample_mapping says each row's text.
        padding: "longest" / True (tensors padded to the longest row, or to max_length with
          "max_length"; pad_to_multiple_of rounds up), or False (lists, no padding).
        is_split_into_words: each text is a list of words (NER); word_ids index that list.
        Returns: BatchEncoding with N rows (N = len(texts), more with overflow windows).
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError(f"encode_batch expects a list of texts, got a single "
                            f"{type(texts).__name__}; wrap it in a list ([text]) or use encode()")
        texts = list(texts)
        strategy = "longest_first" if truncation is True else truncation or None
        padding = "longest" if padding is True else padding
        if max_length is None and (strategy or padding == "max_length"):
            max_length = self.model_max_length
        cut = strategy is not None and max_length is not None
        if return_overflowing and not cut:
            raise ValueError("return_overflowing=True needs truncation and a max_length to cut "
                             "windows at; pass max_length=... and keep truncation=True")
        if cut and add_special_tokens:
            item = texts[0] if texts else ""
            if is_split_into_words:
                item = item[0] if item else ""
            pair = not isinstance(item, str)
            n_special = self._backend.num_special_tokens_to_add(pair)
            if max_length <= n_special:
                raise ValueError(
                    f"max_length={max_length} leaves no room for text: this tokenizer adds "
                    f"{n_special} special tokens to each {'pair' if pair else 'text'}; "
                    f"use max_length > {n_special} or add_special_tokens=False")
        if padding:
            if padding not in ("longest", "max_length"):
                raise ValueError(f"padding must be 'longest', 'max_length', True or False, "
                                 f"got {padding!r}")
            if "pad" not in self._special_tokens:
                raise ValueError("this tokenizer has no pad token, so it cannot pad; pass "
                                 "padding=False, or special_tokens={'pad': '<token>'} when loading")
        with self._lock:
            try:
                if cut:
                    self._backend.enable_truncation(max_length, stride=stride, strategy=strategy)
                if padding:
                    self._backend.enable_padding(
                        pad_id=self.pad_token_id, pad_token=self._special_tokens["pad"],
                        length=max_length if padding == "max_length" else None,
                        pad_to_multiple_of=pad_to_multiple_of)
                encodings = self._backend.encode_batch(
                    texts, is_pretokenized=is_split_into_words,
                    add_special_tokens=add_special_tokens)
            except TypeError:
                raise TypeError(_bad_input(texts, is_split_into_words)) from None
            except Exception as e:  # noqa: BLE001 (tokenizers raises bare Exceptions)
                hint = ("; with truncation='only_first' / 'only_second' the other text must "
                        "leave room for max_length and stride" if strategy in _ONLY else "")
                reason = " ".join(str(e).split()).rstrip(", ")
                raise ValueError(f"could not encode the batch: {reason}{hint}") from None
            finally:
                self._backend.no_truncation()
                self._backend.no_padding()
        windows = [(e, *e.overflowing) if return_overflowing else (e,) for e in encodings]
        rows = [w for row in windows for w in row]
        mapping = [i for i, row in enumerate(windows) for _ in row]
        if padding and len({len(e) for e in rows}) > 1:
            raise ValueError(f"rows are longer than max_length={max_length}: keep truncation on "
                             "or use padding='longest'")
        return BatchEncoding(rows, mapping, padded=bool(padding))

    def encode(self, text: str, pair: str | None = None,
               add_special_tokens: bool = True) -> list[int]:
        """Token ids (list of int) of one text or pair, untruncated."""
        item = text if pair is None else (text, pair)
        return self.encode_batch([item], truncation=False, padding=False,
                                 add_special_tokens=add_special_tokens).input_ids[0]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text, without special tokens (e.g. ['un', '##mask'])."""
        return self.encode_batch([text], truncation=False, padding=False,
                                 add_special_tokens=False).encodings[0].tokens

    # ----------------------------------------------------------------------------- decoding
    def decode(self, ids: Sequence[int] | torch.Tensor | np.ndarray,
               skip_special_tokens: bool = True) -> str:
        """Text of a 1-D sequence of ids (list, int64 tensor (L,) or array (L,)).

        skip_special_tokens drops [CLS], [SEP], padding and other special tokens. WordPiece
        tokenizers join "##" pieces and clean spaces before punctuation as transformers does.
        """
        ids = self._checked_ids(ids)
        if ids and isinstance(ids[0], list):
            raise ValueError("decode takes one row of ids; use decode_batch for a batch")
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def decode_batch(self, ids: Sequence[Sequence[int]] | torch.Tensor | np.ndarray,
                     skip_special_tokens: bool = True) -> list[str]:
        """Texts of a batch of ids (list of lists, or int64 tensor / array (N, L))."""
        rows = [self._checked_ids(row) for row in ids]
        return self._backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)

    def _checked_ids(self, ids: Any) -> list:
        # tokenizers silently drops ids outside the vocabulary; say so instead.
        ids = ids.tolist() if isinstance(ids, torch.Tensor | np.ndarray) else list(ids)
        size = self.vocab_size
        bad = next((i for i in ids if isinstance(i, int | np.integer) and not 0 <= i < size), None)
        if bad is not None:
            raise ValueError(f"id {bad} is outside the vocabulary [0, {size})")
        return ids


# --------------------------------------------------------------------------------- helpers
def _hub_directory(name_or_path: PathType, revision: str | None = None) -> Path:
    """A hub id's local snapshot (unmask.checkpoints.resolve); a path that is not there, or a
    name that can only be a path, gets one line saying what a tokenizer path must be."""
    name = str(name_or_path)
    if (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
            or name.endswith((".json", ".txt", ".model"))):
        raise FileNotFoundError(f"{name} does not exist; {WHAT_A_TOKENIZER_IS}")
    from unmask.checkpoints import resolve  # lazy: checkpoints imports models and torch

    return resolve(name, revision)


def _bad_input(texts: list, is_split_into_words: bool) -> str:
    """The message for the first item tokenizers could not take."""
    def text(x) -> bool:
        if is_split_into_words:  # a list of word strings
            return isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x)
        return isinstance(x, str)

    for i, x in enumerate(texts):
        if text(x) or (isinstance(x, (list, tuple)) and len(x) == 2 and all(map(text, x))):
            continue
        expected = ("a list of word strings, or a pair of such lists" if is_split_into_words
                    else "a str or a (str, str) pair")
        return (f"texts[{i}] is {type(x).__name__} ({repr(x)[:40]}); expected {expected}. "
                "Convert values with str() and drop missing ones (None / NaN) first")
    return "encode_batch expects a list of str or (str, str) pairs"


def _pipeline(kind, lowercase, vocab_size, min_frequency, specials, unk, show_progress):
    common = {"vocab_size": vocab_size, "special_tokens": specials, "show_progress": show_progress}
    if kind == "wordpiece":
        backend = tokenizers.Tokenizer(
            models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        trainer = trainers.WordPieceTrainer(min_frequency=min_frequency,
                                            continuing_subword_prefix="##", **common)
    elif kind == "bpe":
        backend = tokenizers.Tokenizer(models.BPE())
        if lowercase:
            backend.normalizer = normalizers.Lowercase()
        # add_prefix_space=False (as RoBERTa) keeps decode(encode(text)) == text exactly.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            min_frequency=min_frequency, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            **common)
    else:
        backend = tokenizers.Tokenizer(models.Unigram())
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        backend.normalizer = normalizers.Sequence(steps)
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(unk_token=unk, **common)
    return backend, trainer
