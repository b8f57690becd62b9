"""Text -> token ids for masked language models: a thin layer over Hugging Face `tokenizers`.

WordPiece, BPE and Unigram themselves run in the Rust `tokenizers` library; this module only
loads checkpoints the way transformers does (tokenizer.json, a BERT vocab.txt, or a RoBERTa
vocab.json + merges.txt), trains new tokenizers, and turns encodings into the arrays a model
needs: ids, boolean attention masks, token types, character offsets, word ids and overflow
windows.

Axis legend:  N = rows of a batch (one per text, or per window with overflow),  L = tokens per
row (the longest row, or max_length),  T = raw tokenizers `Encoding` objects.

Conventions: attention_mask and special_tokens_mask are bool (True = real token / special
token); word_ids and sequence_ids use -1 where there is no word (specials, padding); offsets
are (start, end) character spans into the text, (0, 0) for specials and padding.
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

__all__ = ["BatchEncoding", "Tokenizer", "read_text"]

ROLES = ("cls", "sep", "pad", "mask", "unk")
BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
# RoBERTa's order: <s>=0 <pad>=1 </s>=2 <unk>=3, and <mask> last-added.
ROBERTA_SPECIALS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
_BERT_ORDER = ("pad", "unk", "cls", "sep", "mask")
_ROBERTA_ORDER = ("cls", "pad", "sep", "unk", "mask")
# Names tried, in order, when a checkpoint does not say which token plays which role.
_ROLE_GUESSES = {
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
    "unk": ("[UNK]", "<unk>"),
}
# transformers writes int(1e30) as model_max_length when a checkpoint has no limit.
_NO_LIMIT = 10**9
_TRUNCATION = ("longest_first", "only_first", "only_second")
_PADDING = ("longest", "max_length")
_KINDS = ("wordpiece", "bpe", "unigram")

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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or delete the file") from None


def _token_content(value: Any) -> str | None:
    # transformers writes special tokens as "[CLS]" or as {"content": "[CLS]", "lstrip": ...}.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _max_length_from(value: Any) -> int | None:
    if isinstance(value, (int, float)) and 0 < value < _NO_LIMIT:
        return int(value)
    return None


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
    lists of (start, end) tuples) and overflow_to_sample_mapping is a list of int.
    Fields are built on first access, so unused ones (offsets, word ids) cost nothing.
    """

    _KEYS = (
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "special_tokens_mask",
        "offsets",
        "word_ids",
        "sequence_ids",
        "overflow_to_sample_mapping",
    )

    def __init__(
        self,
        encodings: list[tokenizers.Encoding],
        sample_mapping: list[int],
        length: int | None,
        pad_id: int,
    ):
        self.encodings = encodings  # the raw tokenizers.Encoding objects, one per row
        self._sample_mapping = sample_mapping
        self._length = length  # None = unpadded lists
        self._pad_id = pad_id

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
        shape = f"padded to {self._length}" if self._length is not None else "unpadded"
        return f"BatchEncoding(rows={len(self.encodings)}, {shape})"

    @property
    def padded(self) -> bool:
        """True when fields are rectangular tensors, False when they are lists."""
        return self._length is not None

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and token_type_ids: the arguments an encoder takes."""
        return {k: self[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    @cached_property
    def _lengths(self) -> np.ndarray:
        return np.fromiter(
            (len(e) for e in self.encodings), dtype=np.int64, count=len(self.encodings)
        )

    @cached_property
    def _flat_index(self) -> np.ndarray:
        # Where each real token lands in the flattened (N * L) padded array: costs O(tokens),
        # not O(N * L), which matters when one long row pads everything to 512.
        lengths = self._lengths
        row_start = np.repeat(np.arange(len(lengths), dtype=np.int64) * self._length, lengths)
        token_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return row_start + np.arange(int(lengths.sum()), dtype=np.int64) - token_start

    def _pad(self, flat: np.ndarray, fill: int, width: tuple[int, ...] = ()) -> torch.Tensor:
        out = np.full((len(self.encodings) * self._length, *width), fill, dtype=np.int64)
        out[self._flat_index] = flat
        return torch.from_numpy(out.reshape(len(self.encodings), self._length, *width))

    def _int_field(self, name: str, fill: int):
        rows = [getattr(e, name) for e in self.encodings]
        if self._length is None:
            return rows
        total = int(self._lengths.sum())
        return self._pad(np.fromiter(chain.from_iterable(rows), np.int64, count=total), fill)

    def _optional_field(self, name: str):
        # word_ids / sequence_ids hold None for specials; -1 instead keeps them integer.
        rows = [getattr(e, name) for e in self.encodings]
        if self._length is None:
            return [[-1 if v is None else v for v in row] for row in rows]
        flat = np.array(list(chain.from_iterable(rows)), dtype=np.float64)  # None -> nan
        flat = np.nan_to_num(flat, nan=-1.0).astype(np.int64)
        return self._pad(flat, -1)

    @cached_property
    def input_ids(self):
        return self._int_field("ids", self._pad_id)

    @cached_property
    def attention_mask(self):
        if self._length is None:
            return [[True] * len(e) for e in self.encodings]
        return torch.arange(self._length) < torch.from_numpy(self._lengths)[:, None]

    @cached_property
    def token_type_ids(self):
        return self._int_field("type_ids", 0)

    @cached_property
    def special_tokens_mask(self):
        out = self._int_field("special_tokens_mask", 1)
        return out.bool() if self._length is not None else [[v == 1 for v in r] for r in out]

    @cached_property
    def offsets(self):
        rows = [e.offsets for e in self.encodings]
        if self._length is None:
            return rows
        total = int(self._lengths.sum())
        pairs = np.dtype((np.int64, 2))
        return self._pad(np.fromiter(chain.from_iterable(rows), pairs, count=total), 0, (2,))

    @cached_property
    def word_ids(self):
        return self._optional_field("word_ids")

    @cached_property
    def sequence_ids(self):
        return self._optional_field("sequence_ids")

    @cached_property
    def overflow_to_sample_mapping(self):
        if self._length is None:
            return list(self._sample_mapping)
        return torch.tensor(self._sample_mapping, dtype=torch.long)


class Tokenizer:
    """A tokenizer for masked language models, backed by a `tokenizers.Tokenizer`.

    Build one with `from_pretrained(directory)`, `from_file("tokenizer.json")`,
    `from_wordpiece_vocab("vocab.txt")`, `from_bpe_vocab("vocab.json", "merges.txt")` or
    `train(files, kind=...)`. `special_tokens` maps roles ("cls", "sep", "pad", "mask",
    "unk") to token strings; roles not given are guessed from the usual names ([CLS], <s>, ...).
    A backend passed in directly is used as is, except that its fixed truncation and padding
    are switched off (encode_batch sets them per call).
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        special_tokens: Mapping[str, str] | None = None,
        model_max_length: int | None = None,
    ):
        if not isinstance(backend, tokenizers.Tokenizer):
            raise TypeError(
                f"backend must be a tokenizers.Tokenizer, got {type(backend).__name__}; "
                "to load files use Tokenizer.from_pretrained(directory) or Tokenizer.from_file"
            )
        if model_max_length is not None and (
            not isinstance(model_max_length, int) or model_max_length <= 0
        ):
            raise ValueError(
                f"model_max_length must be a positive int or None, got {model_max_length!r}"
            )
        # Truncation and padding are per call (encode_batch); a tokenizer.json may carry fixed
        # ones (MiniLM's pads everything to 128), which would silently change every encoding.
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend
        self.model_max_length = model_max_length
        self._special_tokens = self._resolve_roles(dict(special_tokens or {}))
        self._register_specials()
        # enable_truncation mutates the shared Rust tokenizer: one call at a time.
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- roles
    def _resolve_roles(self, given: dict[str, str]) -> dict[str, str]:
        unknown = set(given) - set(ROLES)
        if unknown:
            raise ValueError(
                f"unknown special token role(s) {sorted(unknown)}; the roles are {list(ROLES)}"
            )
        roles: dict[str, str] = {}
        for role in ROLES:
            token = given.get(role)
            if token is not None:
                if not isinstance(token, str):
                    raise TypeError(f"special_tokens[{role!r}] must be a str, got {token!r}")
                if self._backend.token_to_id(token) is None:
                    raise ValueError(
                        f"special_tokens[{role!r}] = {token!r} is not in the vocabulary; "
                        "pick a token the vocabulary has or add it to the tokenizer first"
                    )
                roles[role] = token
                continue
            for guess in _ROLE_GUESSES[role]:
                if self._backend.token_to_id(guess) is not None:
                    roles[role] = guess
                    break
        return roles

    def _register_specials(self) -> None:
        # Role tokens must be "special" in the backend so that the normaliser never splits
        # them, decode(skip_special_tokens=True) drops them and special_tokens_mask marks them.
        added = {t.content for t in self._backend.get_added_tokens_decoder().values()}
        missing = [t for t in self._special_tokens.values() if t not in added]
        if missing:
            self._backend.add_special_tokens(
                [
                    # RoBERTa's <mask> eats the space before it, so "a <mask>" works as "a[MASK]".
                    AddedToken(t, special=True, normalized=False, lstrip=(t == "<mask>"))
                    for t in missing
                ]
            )

    @property
    def special_tokens(self) -> dict[str, str]:
        """Role -> token string, e.g. {"cls": "[CLS]", "mask": "[MASK]", ...}."""
        return dict(self._special_tokens)

    def _role_id(self, role: str) -> int:
        token = self._special_tokens.get(role)
        if token is None:
            raise ValueError(
                f"this tokenizer has no {role} token (none of {list(_ROLE_GUESSES[role])} is in "
                f"its vocabulary); pass special_tokens={{{role!r}: '<token>'}} when loading it"
            )
        return self._backend.token_to_id(token)

    @property
    def mask_token_id(self) -> int:
        """Id of the mask token ([MASK] / <mask>); ValueError if the tokenizer has none."""
        return self._role_id("mask")

    @property
    def pad_token_id(self) -> int:
        """Id of the padding token; ValueError if the tokenizer has none."""
        return self._role_id("pad")

    @property
    def cls_token_id(self) -> int:
        """Id of the first token of every sequence ([CLS] / <s>)."""
        return self._role_id("cls")

    @property
    def sep_token_id(self) -> int:
        """Id of the separator / end token ([SEP] / </s>)."""
        return self._role_id("sep")

    @property
    def unk_token_id(self) -> int:
        """Id of the unknown token ([UNK] / <unk>)."""
        return self._role_id("unk")

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
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, got {type(token).__name__}")
        i = self._backend.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary; tokenize() splits free text")
        return i

    def id_to_token(self, id: int) -> str:
        """Token string of `id`; KeyError if the id is outside [0, vocab_size)."""
        if isinstance(id, torch.Tensor | np.integer):
            id = int(id)
        if not isinstance(id, int):
            raise TypeError(f"id must be an int, got {type(id).__name__}")
        token = self._backend.id_to_token(id) if id >= 0 else None
        if token is None:
            raise KeyError(f"id {id} is outside the vocabulary [0, {self.vocab_size})")
        return token

    def __repr__(self) -> str:
        model = type(self._backend.model).__name__
        return (
            f"Tokenizer({model}, vocab_size={self.vocab_size}, "
            f"special_tokens={self._special_tokens}, model_max_length={self.model_max_length})"
        )

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        directory: PathType,
        special_tokens: Mapping[str, str] | None = None,
        model_max_length: int | None = None,
    ) -> Tokenizer:
        """Load the tokenizer of a local Hugging Face checkpoint directory.

        Picks, in order: tokenizer.json; vocab.txt (BERT WordPiece); vocab.json + merges.txt
        (RoBERTa byte-level BPE). Special token names, model_max_length, lower-casing and
        add_prefix_space come from tokenizer_config.json / special_tokens_map.json when
        present; `special_tokens` and `model_max_length` override them.
        """
        directory = Path(directory)
        if not directory.is_dir():
            hint = (
                "a file; pass its directory, or use Tokenizer.from_file for a tokenizer.json"
                if directory.is_file()
                else "missing; model hubs are not reached, download the checkpoint first"
            )
            raise FileNotFoundError(f"{directory} is {hint}")
        config = cls._read_config(directory)
        roles = {r: t for r, t in config["special_tokens"].items()}
        roles.update(special_tokens or {})
        max_len = model_max_length or config["model_max_length"]
        options = config["options"]
        if (directory / "tokenizer.json").is_file():
            backend = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
            if max_len is None and backend.truncation:
                max_len = backend.truncation["max_length"]  # what the saver meant as a limit
            return cls(backend, roles, max_len)
        if (directory / "vocab.txt").is_file():
            return cls.from_wordpiece_vocab(
                directory / "vocab.txt",
                lowercase=options.get("do_lower_case", True),
                strip_accents=options.get("strip_accents"),
                tokenize_chinese_chars=options.get("tokenize_chinese_chars", True),
                special_tokens=roles,
                model_max_length=max_len,
                added_tokens=config["added_tokens"],
            )
        if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
            return cls.from_bpe_vocab(
                directory / "vocab.json",
                directory / "merges.txt",
                add_prefix_space=options.get("add_prefix_space", False),
                trim_offsets=options.get("trim_offsets", True),
                special_tokens=roles,
                model_max_length=max_len,
                added_tokens=config["added_tokens"],
            )
        present = sorted(p.name for p in directory.iterdir())[:20]
        raise FileNotFoundError(
            f"no tokenizer files in {directory}: looked for tokenizer.json, vocab.txt (BERT "
            f"WordPiece), or vocab.json + merges.txt (RoBERTa BPE); found {present}. "
            "SentencePiece .model files are not supported: convert them to tokenizer.json "
            "with transformers first"
        )

    @staticmethod
    def _read_config(directory: Path) -> dict:
        tok_config, special_map = {}, {}
        if (directory / "tokenizer_config.json").is_file():
            tok_config = _read_json(directory / "tokenizer_config.json")
        if (directory / "special_tokens_map.json").is_file():
            special_map = _read_json(directory / "special_tokens_map.json")
        roles: dict[str, str] = {}
        # As in transformers, special_tokens_map.json overrides tokenizer_config.json.
        for source in (tok_config, special_map):
            for role in ROLES:
                token = _token_content(source.get(f"{role}_token"))
                if token is not None:
                    roles[role] = token
        added = []
        for i, tok in sorted(
            (tok_config.get("added_tokens_decoder") or {}).items(), key=lambda kv: int(kv[0])
        ):
            content = _token_content(tok)
            if content is not None:
                added.append(
                    AddedToken(
                        content,
                        special=bool(tok.get("special", False)),
                        lstrip=bool(tok.get("lstrip", False)),
                        rstrip=bool(tok.get("rstrip", False)),
                        single_word=bool(tok.get("single_word", False)),
                        normalized=bool(tok.get("normalized", not tok.get("special", False))),
                    )
                )
        options = {
            k: tok_config[k]
            for k in (
                "do_lower_case",
                "strip_accents",
                "tokenize_chinese_chars",
                "add_prefix_space",
                "trim_offsets",
            )
            if k in tok_config
        }
        return {
            "special_tokens": roles,
            "model_max_length": _max_length_from(tok_config.get("model_max_length")),
            "options": options,
            "added_tokens": added,
        }

    @classmethod
    def from_file(
        cls,
        path: PathType,
        special_tokens: Mapping[str, str] | None = None,
        model_max_length: int | None = None,
    ) -> Tokenizer:
        """Load a tokenizer.json file (any model type the `tokenizers` library supports)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist; expected a tokenizer.json file "
                "(for a checkpoint directory use Tokenizer.from_pretrained)"
            )
        try:
            backend = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 (tokenizers raises a bare Exception on bad JSON)
            raise ValueError(f"{path} is not a valid tokenizer.json: {e}") from None
        if model_max_length is None and backend.truncation:
            model_max_length = backend.truncation["max_length"]
        return cls(backend, special_tokens, model_max_length)

    @classmethod
    def from_wordpiece_vocab(
        cls,
        vocab_path: PathType,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        special_tokens: Mapping[str, str] | None = None,
        model_max_length: int | None = None,
        added_tokens: Sequence[AddedToken] = (),
    ) -> Tokenizer:
        """Build a BERT WordPiece tokenizer from a vocab.txt (one token per line, id = line).

        Defaults are bert-base-uncased's: lower-case, strip accents (None = follow
        `lowercase`, as BERT does), split CJK characters; template [CLS] A [SEP] and
        [CLS] A [SEP] B [SEP] with token types 0 then 1.
        """
        vocab_path = Path(vocab_path)
        if not vocab_path.is_file():
            raise FileNotFoundError(f"{vocab_path} does not exist; expected a BERT vocab.txt")
        vocab: dict[str, int] = {}
        # Same parsing as transformers' load_vocab: strip only the newline, last duplicate wins.
        with open(vocab_path, encoding="utf-8") as f:
            for index, line in enumerate(f.readlines()):
                vocab[line.rstrip("\n")] = index
        roles = {**BERT_SPECIALS, **(special_tokens or {})}
        unk = roles["unk"]
        if unk not in vocab:
            raise ValueError(
                f"{vocab_path} has no unknown token {unk!r}; pass special_tokens={{'unk': ...}}"
            )
        backend = tokenizers.Tokenizer(
            models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100)
        )
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=tokenize_chinese_chars,
            strip_accents=strip_accents,
            lowercase=lowercase,
        )
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        roles = {r: t for r, t in roles.items() if t in vocab}
        _add_tokens(backend, added_tokens)
        tok = cls(backend, roles, model_max_length)
        tok._set_template(pair_type_id=1)
        return tok

    @classmethod
    def from_bpe_vocab(
        cls,
        vocab_path: PathType,
        merges_path: PathType,
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        special_tokens: Mapping[str, str] | None = None,
        model_max_length: int | None = None,
        added_tokens: Sequence[AddedToken] = (),
    ) -> Tokenizer:
        """Build a RoBERTa byte-level BPE tokenizer from vocab.json + merges.txt.

        Template <s> A </s> and <s> A </s></s> B </s> (token types all 0, as RoBERTa).
        `add_prefix_space` makes the first word tokenize like any other word (" word").
        """
        vocab_path, merges_path = Path(vocab_path), Path(merges_path)
        for p, what in ((vocab_path, "vocab.json"), (merges_path, "merges.txt")):
            if not p.is_file():
                raise FileNotFoundError(f"{p} does not exist; a RoBERTa BPE needs its {what}")
        vocab, merges = models.BPE.read_file(str(vocab_path), str(merges_path))
        # No unk_token: byte-level BPE can spell every string from its 256 byte symbols.
        backend = tokenizers.Tokenizer(
            models.BPE(
                vocab,
                merges,
                dropout=None,
                continuing_subword_prefix="",
                end_of_word_suffix="",
                fuse_unk=False,
            )
        )
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        backend.decoder = decoders.ByteLevel()
        roles = {**ROBERTA_SPECIALS, **(special_tokens or {})}
        roles = {r: t for r, t in roles.items() if t in vocab}
        _add_tokens(backend, added_tokens)
        tok = cls(backend, roles, model_max_length)
        if "cls" in roles and "sep" in roles:
            backend.post_processor = processors.RobertaProcessing(
                (roles["sep"], tok.sep_token_id),
                (roles["cls"], tok.cls_token_id),
                trim_offsets=trim_offsets,
                add_prefix_space=add_prefix_space,
            )
        return tok

    def _set_template(self, pair_type_id: int, byte_level: bool = False) -> None:
        # BERT: [CLS] A [SEP] / [CLS] A [SEP] B [SEP] (B types 1). RoBERTa-style names get the
        # RoBERTa pair layout <s> A </s></s> B </s>, all type 0.
        if "cls" not in self._special_tokens or "sep" not in self._special_tokens:
            return  # nothing to wrap sequences with
        cls_tok, sep_tok = self._special_tokens["cls"], self._special_tokens["sep"]
        b = pair_type_id
        if cls_tok == "<s>":
            pair = f"{cls_tok}:0 $A:0 {sep_tok}:0 {sep_tok}:{b} $B:{b} {sep_tok}:{b}"
        else:
            pair = f"{cls_tok}:0 $A:0 {sep_tok}:0 $B:{b} {sep_tok}:{b}"
        template = processors.TemplateProcessing(
            single=f"{cls_tok}:0 $A:0 {sep_tok}:0",
            pair=pair,
            special_tokens=[(cls_tok, self.cls_token_id), (sep_tok, self.sep_token_id)],
        )
        if byte_level:
            # Byte-level tokens carry their leading space; trim it from the offsets first.
            template = processors.Sequence([processors.ByteLevel(trim_offsets=True), template])
        self._backend.post_processor = template

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        files: PathType | Iterable[PathType],
        kind: Literal["wordpiece", "bpe", "unigram"] = "wordpiece",
        vocab_size: int = 30522,
        lowercase: bool = True,
        special_tokens: Literal["bert", "roberta"] | None = None,
        min_frequency: int = 2,
        model_max_length: int = 512,
        show_progress: bool = False,
    ) -> Tokenizer:
        """Train a new tokenizer on text files (UTF-8, else cp1252 / latin-1), line by line.

        kind: "wordpiece" (BERT pipeline: BertNormalizer, BertPreTokenizer, ## subwords),
        "bpe" (byte-level, as RoBERTa: never produces an unknown token) or "unigram"
        (NFKC, Metaspace "▁" word boundaries, as ALBERT/T5).
        special_tokens: "bert" ([PAD] [UNK] [CLS] [SEP] [MASK], ids 0-4) or "roberta"
        (<s> <pad> </s> <unk> <mask>, ids 0-4); None picks "roberta" for bpe, else "bert".
        A post-processor adds them around each sequence / pair.
        """
        if isinstance(files, (str, PathLike)):
            files = [files]
        paths = [Path(f) for f in files]
        if not paths:
            raise ValueError("train needs at least one text file")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"training files not found: {missing}")

        def lines() -> Iterator[str]:
            for path in paths:
                yield from read_text(path).splitlines()

        return cls.train_from_iterator(
            lines(),
            kind=kind,
            vocab_size=vocab_size,
            lowercase=lowercase,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            model_max_length=model_max_length,
            show_progress=show_progress,
        )

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
        """Train a new tokenizer on an iterable of str; see `train` for the options."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if special_tokens is None:
            special_tokens = "roberta" if kind == "bpe" else "bert"
        if special_tokens not in ("bert", "roberta"):
            raise ValueError(f"special_tokens must be 'bert' or 'roberta', got {special_tokens!r}")
        if not isinstance(vocab_size, int) or vocab_size < 16:
            raise ValueError(f"vocab_size must be an int >= 16, got {vocab_size!r}")
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "texts must be an iterable of str, not one str; "
                "wrap it in a list, or use Tokenizer.train(files) for file paths"
            )
        names, order = (
            (BERT_SPECIALS, _BERT_ORDER)
            if special_tokens == "bert"
            else (ROBERTA_SPECIALS, _ROBERTA_ORDER)
        )
        specials = [names[r] for r in order]  # ids 0..4 in this order
        unk = names["unk"]

        backend, trainer = _pipeline(
            kind, lowercase, vocab_size, min_frequency, specials, unk, show_progress
        )
        backend.train_from_iterator(_checked_texts(texts), trainer=trainer)
        tok = cls(backend, dict(names), model_max_length)
        if kind == "bpe" and special_tokens == "roberta":
            backend.post_processor = processors.RobertaProcessing(
                (names["sep"], tok.sep_token_id),
                (names["cls"], tok.cls_token_id),
                trim_offsets=True,
                add_prefix_space=False,
            )
        else:
            tok._set_template(
                pair_type_id=1 if special_tokens == "bert" else 0, byte_level=kind == "bpe"
            )
        return tok

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
        inputs, is_pair = _check_batch(texts, is_split_into_words)
        truncation = _check_truncation(truncation)
        if padding is True:
            padding = "longest"
        if padding not in _PADDING and padding is not False:
            raise ValueError(
                f"padding must be 'longest', 'max_length', True or False, got {padding!r}"
            )
        if max_length is None and (truncation or padding == "max_length"):
            max_length = self.model_max_length
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool)
        ):
            raise TypeError(f"max_length must be an int or None, got {max_length!r}")
        if padding == "max_length" and max_length is None:
            raise ValueError(
                "padding='max_length' needs max_length (this tokenizer has no model_max_length)"
            )
        if not isinstance(stride, int) or stride < 0:
            raise ValueError(f"stride must be an int >= 0, got {stride!r}")
        if return_overflowing and not (truncation and max_length is not None):
            raise ValueError(
                "return_overflowing=True needs truncation and a max_length to cut windows at; "
                "pass max_length=... and keep truncation=True"
            )
        if pad_to_multiple_of is not None and (
            not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0
        ):
            raise ValueError(
                f"pad_to_multiple_of must be a positive int, got {pad_to_multiple_of!r}"
            )
        n_special = self._backend.num_special_tokens_to_add(is_pair) if add_special_tokens else 0
        if truncation and max_length is not None:
            if max_length <= n_special:
                raise ValueError(
                    f"max_length={max_length} leaves no room for text: this tokenizer adds "
                    f"{n_special} special tokens to each {'pair' if is_pair else 'text'}; "
                    f"use max_length > {n_special} or add_special_tokens=False"
                )
            if return_overflowing and stride >= max_length - n_special:
                raise ValueError(
                    f"stride={stride} must be smaller than the room for text in a window "
                    f"(max_length {max_length} - {n_special} special tokens = "
                    f"{max_length - n_special}), otherwise windows never advance"
                )
        if padding and "pad" not in self._special_tokens:
            raise ValueError(
                "this tokenizer has no pad token, so it cannot pad; pass padding=False, or "
                "special_tokens={'pad': '<token>'} when loading it"
            )
        pad_id = self.pad_token_id if padding else 0

        with self._lock:
            try:
                if truncation and max_length is not None:
                    self._backend.enable_truncation(max_length, stride=stride, strategy=truncation)
                else:
                    self._backend.no_truncation()
                encodings = self._backend.encode_batch(
                    inputs,
                    is_pretokenized=is_split_into_words,
                    add_special_tokens=add_special_tokens,
                )
            except Exception as e:  # noqa: BLE001 (tokenizers raises bare Exceptions)
                raise ValueError(
                    f"could not encode the batch: {e}. With truncation='only_first' / "
                    "'only_second' the other text must leave room for max_length and stride"
                ) from None
            finally:
                self._backend.no_truncation()

        if return_overflowing:
            rows, mapping = [], []
            for i, enc in enumerate(encodings):
                windows = [enc, *enc.overflowing]
                rows.extend(windows)
                mapping.extend([i] * len(windows))
        else:
            rows, mapping = encodings, list(range(len(encodings)))

        length = None
        if padding:
            longest = max((len(e) for e in rows), default=0)
            if padding == "max_length":
                if longest > max_length:
                    raise ValueError(
                        f"a row has {longest} tokens, more than max_length={max_length}; "
                        "keep truncation on or use padding='longest'"
                    )
                length = max_length
            else:
                length = longest
            if pad_to_multiple_of:
                length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
        return BatchEncoding(rows, mapping, length, pad_id)

    def encode(
        self, text: str, pair: str | None = None, add_special_tokens: bool = True
    ) -> list[int]:
        """Token ids (list of int) of one text or pair, untruncated."""
        item = text if pair is None else (text, pair)
        batch = self.encode_batch(
            [item], truncation=False, padding=False, add_special_tokens=add_special_tokens
        )
        return batch.input_ids[0]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text, without special tokens (e.g. ['un', '##mask'])."""
        _check_batch([text], False)
        return self._backend.encode(text, add_special_tokens=False).tokens

    # ----------------------------------------------------------------------------- decoding
    def decode(
        self, ids: Sequence[int] | torch.Tensor | np.ndarray, skip_special_tokens: bool = True
    ) -> str:
        """Text of a 1-D sequence of ids (list, int64 tensor (L,) or array (L,)).

        skip_special_tokens drops [CLS], [SEP], padding and other special tokens. WordPiece
        tokenizers join "##" pieces and clean spaces before punctuation as transformers does.
        """
        ids = _as_id_list(ids, 1)
        return self._backend.decode(self._checked_ids(ids), skip_special_tokens=skip_special_tokens)

    def decode_batch(
        self,
        ids: Sequence[Sequence[int]] | torch.Tensor | np.ndarray,
        skip_special_tokens: bool = True,
    ) -> list[str]:
        """Texts of a batch of ids (list of lists, or int64 tensor / array (N, L))."""
        rows = [self._checked_ids(r) for r in _as_id_list(ids, 2)]
        return self._backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)

    def _checked_ids(self, ids: list[int]) -> list[int]:
        size = self.vocab_size
        bad = next((i for i in ids if not 0 <= i < size), None)
        if bad is not None:
            raise ValueError(f"id {bad} is outside the vocabulary [0, {size})")
        return ids


# --------------------------------------------------------------------------------- helpers
def _add_tokens(backend: tokenizers.Tokenizer, added: Sequence[AddedToken]) -> None:
    special = [t for t in added if t.special]
    normal = [t for t in added if not t.special]
    if special:
        backend.add_special_tokens(special)
    if normal:
        backend.add_tokens(normal)


def _pipeline(kind, lowercase, vocab_size, min_frequency, specials, unk, show_progress):
    if kind == "wordpiece":
        backend = tokenizers.Tokenizer(
            models.WordPiece(unk_token=unk, max_input_chars_per_word=100)
        )
        backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            continuing_subword_prefix="##",
            show_progress=show_progress,
        )
    elif kind == "bpe":
        backend = tokenizers.Tokenizer(models.BPE())
        if lowercase:
            backend.normalizer = normalizers.Lowercase()
        # add_prefix_space=False (as RoBERTa) keeps decode(encode(text)) == text exactly.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
    else:
        backend = tokenizers.Tokenizer(models.Unigram())
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        backend.normalizer = normalizers.Sequence(steps)
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            unk_token=unk,
            show_progress=show_progress,
        )
    return backend, trainer


def _checked_texts(texts: Iterable[str]) -> Iterator[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"training text {i} is {type(text).__name__}, expected str")
        yield text


def _describe(x: Any) -> str:
    return f"{type(x).__name__} ({repr(x)[:40]})"


def _check_batch(texts: Any, is_split_into_words: bool) -> tuple[list, bool]:
    """Validate a batch; return what tokenizers.encode_batch takes and whether any is a pair."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "encode_batch expects a list of texts, got a single "
            f"{type(texts).__name__}; wrap it in a list ([text]) or use encode(text)"
        )
    if isinstance(texts, torch.Tensor):
        raise TypeError(
            "encode_batch expects a list of str, got a tensor; decode() turns ids into text"
        )
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(
            f"encode_batch expects a list of str or (str, str) pairs, got {_describe(texts)}"
        ) from None

    def words_ok(x) -> bool:
        return isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x)

    out, is_pair = [], False
    for i, x in enumerate(texts):
        if not is_split_into_words:
            if isinstance(x, str):
                out.append(x)
                continue
            if isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(s, str) for s in x):
                out.append((x[0], x[1]))
                is_pair = True
                continue
            expected = "a str or a (str, str) pair"
        else:
            if words_ok(x) and not (len(x) == 2 and all(isinstance(w, (list, tuple)) for w in x)):
                out.append(list(x))
                continue
            if isinstance(x, (tuple, list)) and len(x) == 2 and all(words_ok(s) for s in x):
                out.append((list(x[0]), list(x[1])))
                is_pair = True
                continue
            expected = "a list of word strings, or a pair of such lists (is_split_into_words=True)"
        raise TypeError(
            f"texts[{i}] is {_describe(x)}; expected {expected}. "
            "Convert values with str() and drop missing ones (None / NaN) first"
        )
    return out, is_pair


def _check_truncation(truncation: Any) -> str | None:
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None:
        return None
    if truncation in _TRUNCATION:
        return truncation
    raise ValueError(f"truncation must be True, False or one of {_TRUNCATION}, got {truncation!r}")


def _as_id_list(ids: Any, ndim: int) -> list:
    if isinstance(ids, torch.Tensor | np.ndarray):
        if ids.ndim != ndim:
            raise ValueError(
                f"expected a {ndim}-D array of ids, got shape {tuple(ids.shape)}; "
                + ("use decode_batch for a batch" if ndim == 1 else "use decode for one row")
            )
        if isinstance(ids, torch.Tensor):
            if ids.is_floating_point():
                raise TypeError(f"ids must be integers, got a {ids.dtype} tensor")
            return ids.tolist()
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got a {ids.dtype} array")
        return ids.tolist()
    if isinstance(ids, (str, bytes)):
        raise TypeError("decode takes token ids, not text")
    rows = list(ids) if ndim == 1 else [list(r) for r in ids]
    flat = rows if ndim == 1 else list(chain.from_iterable(rows))
    for i in flat:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"ids must be ints, got {_describe(i)}")
    if ndim == 1:
        return [int(i) for i in rows]
    return [[int(i) for i in r] for r in rows]
