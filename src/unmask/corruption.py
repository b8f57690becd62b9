"""MLM corruption: choose positions, replace them 80/10/10, and say what the model must predict.

Three ways to choose positions, one way to replace them:

- token       each maskable token with probability p (BERT), or exactly round(p * n) per row
- whole_word  every piece of a word together, from word ids (WordPiece "##", BPE "Ġ" and
              SentencePiece "▁" alike, since only word ids are read)
- span        SpanBERT: runs of whole words with clipped-geometric lengths, never crossing a
              document boundary
- then each chosen token (or word, or span) becomes [MASK], a random non-special token or stays
  as it is (80/10/10 by default: mask_fraction, random_fraction); labels hold its original id.

Axis legend:  B = rows (samples) in a batch,  L = tokens per row,  V = vocabulary size,
W = words in the batch,  N = selected positions in the batch.

Reproducibility. Every random number is a hash of (seed, stream, sample id, counter) through
splitmix64 (vectorised numpy uint64 arithmetic, which wraps mod 2**64), never a stateful
generator. The counter is a token's index among the row's real tokens, a word's index among the
row's words, or a span's index in its document, so a sample is corrupted the same way whatever
batch it lands in, its position in that batch, the padding length or side, and the number of
DataLoader workers. Pass `sample_ids` (dataset indices) for that. The default, arange(B), only
makes a batch reproducible as a whole, and gives row b of every batch the same draws: fine for
one batch, wrong for a stream of batches. `content_sample_ids` (what MLMCollator uses when
examples carry no "sample_id") derives ids from each row's tokens instead, so different texts
differ and the same text is corrupted the same way in any batch. For fresh masks every epoch
(RoBERTa's dynamic masking), use `dataclasses.replace(corruption, seed=epoch)` or sample ids
that include the epoch.

Everything runs on the CPU in numpy (a DataLoader worker's job); results come back as int64
torch tensors on the device of `input_ids`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["MLMCorruption", "content_sample_ids", "expected_span_length"]

# splitmix64 constants (Steele, Lea & Flood 2014).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31, _S32 = (np.uint64(s) for s in (11, 27, 30, 31, 32))
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_ONE_53 = 2**53  # uniforms use the top 53 bits: exactly representable as float64

# One stream per kind of decision, so no two decisions share a random number.
_SELECT, _ACTION, _RANDOM, _WORD, _WORD_ACTION, _PHASE, _PIECE, _SPAN_ACTION, _ELECTRA = range(
    1, 10
)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array; a bijection with good avalanche."""
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


@functools.lru_cache(maxsize=256)
def _stream_key(seed: int, stream: int) -> np.uint64:
    """The key of one (seed, stream) pair; cached, since every batch asks for the same few."""
    base = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    return _mix(base + np.array([stream], dtype=np.uint64) * _GOLDEN)[0]  # arrays wrap silently


def _row_keys(seed: int, stream: int, sample_ids: np.ndarray) -> np.ndarray:
    """uint64 (B,): one key per sample for one stream; counters then index inside it."""
    return _mix(sample_ids * _GOLDEN ^ _stream_key(seed, stream))


def _hash(row_keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """uint64, broadcast of row_keys and counters: splitmix64 output number `counter + 1`."""
    return _mix(row_keys + (counters + np.uint64(1)) * _GOLDEN)


def content_sample_ids(input_ids: Any, attention_mask: Any | None = None) -> torch.Tensor:
    """int64 (B,): a sample id per row from its real tokens, in order (a 64-bit hash).

    input_ids: int (B, L); attention_mask: bool or 0/1 (B, L), True = real token (None: all
    real). Padding is left out, so the id does not depend on padding length or side: the same
    text gets the same id in any batch, and different texts (almost surely) different ids.
    Repeated texts share an id; give dataset indices instead where they must differ.
    """
    ids = _int_matrix(input_ids, "input_ids")
    real, pos = _real_positions(attention_mask, ids.shape)
    per_token = _hash(ids.view(np.uint64), pos)  # (B, L), each id keyed by its position
    per_token[~real] = 0
    key = _mix(per_token.sum(axis=1, dtype=np.uint64))  # the sum wraps mod 2**64
    return torch.from_numpy(key.view(np.int64))


def _real_positions(
    attention_mask: Any | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """real tokens bool (B, L) (all, for None) and each token's index among its row's real
    tokens, uint64 (B, L): the same with any padding length or side."""
    if attention_mask is None:
        real = np.ones(shape, dtype=bool)
    else:
        real = _bool_matrix(attention_mask, "attention_mask", shape)
    return real, np.maximum(np.cumsum(real, axis=1) - 1, 0).astype(np.uint64)


def _threshold(p: float) -> np.uint64:
    """bits >> 11 < _threshold(p) holds with probability p (p = 1 always holds)."""
    return np.uint64(min(_ONE_53, round(p * _ONE_53)))


def _uniform(bits: np.ndarray) -> np.ndarray:
    """float64 in (0, 1]: never 0, so logs are finite."""
    return ((bits >> _S11) + np.uint64(1)).astype(np.float64) * (1.0 / _ONE_53)


def _below(bits: np.ndarray, n: int) -> np.ndarray:
    """int64 in [0, n) (n < 2**32), by multiply-shift on the top 32 bits."""
    return (((bits >> _S32) * np.uint64(n)) >> _S32).astype(np.int64)


def expected_span_length(geometric_p: float = 0.2, max_span: int = 10) -> float:
    """Mean of SpanBERT's span length: Geometric(geometric_p) on 1..max_span, renormalised.

    The defaults give 3.79 words (the paper's "mean span length of 3.8").
    """
    _checked(geometric_p, "geometric_p", "a float in (0, 1]", lambda v: 0.0 < v <= 1.0)
    _checked(max_span, "max_span", "an int >= 1", lambda v: v >= 1, int)
    k = np.arange(1, max_span + 1, dtype=np.float64)
    pmf = geometric_p * (1.0 - geometric_p) ** (k - 1)
    return float((k * pmf).sum() / pmf.sum())


def _checked(
    value: Any, name: str, what: str, ok: Callable[[Any], bool], types: Any = int | float
) -> Any:
    """value itself if it is one of `types` (never a bool) and ok(value), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:  # an ndarray comes back as it is
        return np.asarray(x)
    except (ValueError, TypeError):
        raise TypeError(
            f"{name} must be a tensor, array or list of equal-length rows, got {type(x).__name__}"
        ) from None


def _int_matrix(x: Any, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """int64 (B, L) from a tensor/array/nested list; TypeError / ValueError naming the fix."""
    a = _to_numpy(x, name)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}; cast with .long()")
    if shape is None and a.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, length), got shape {tuple(a.shape)}; "
            "for a single sequence pass ids[None]"
        )
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {shape} like input_ids")
    return a.astype(np.int64, copy=False)


def _bool_matrix(x: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.shape != shape:
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {shape} like input_ids")
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() > 1)):
        raise ValueError(f"{name} must be bool or 0/1 integers, got dtype {a.dtype}")
    return a.astype(bool)


@dataclass(frozen=True)
class MLMCorruption:
    """BERT-style corruption of token ids, reproducible per sample (see the module docstring).

    mask_token_id: id written at positions chosen for [MASK].
    vocab_size: number of ids V; input ids must lie in [0, V).
    special_ids: ids never chosen and never used as random replacements ([CLS], [SEP], [PAD],
      [UNK], [MASK], ...); the mask id is always added. `Tokenizer.special_ids` fits.
    mask_rate: share p of maskable tokens chosen (0.15 in BERT; 0.3 suits short budgets).
    mask_fraction / random_fraction: of the chosen, the share that becomes [MASK] / a random
      non-special token; the rest keep their id. mask_fraction + random_fraction <= 1.
    exact: choose exactly round(p * n) tokens per row (rounded half up), n being the row's
      maskable tokens (real tokens that are not special), for static shapes; otherwise each
      maskable token is chosen independently with probability p.
    seed: any int; with a sample's id it fixes that sample's corruption.

    Every method returns (corrupted_ids, labels): int64 (B, L) tensors on the input's device;
    labels = original id where chosen, -100 elsewhere. Inputs are never modified.
    """

    mask_token_id: int
    vocab_size: int
    special_ids: Iterable[int] = ()
    mask_rate: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1
    exact: bool = False
    seed: int = 0
    _is_special: np.ndarray = field(init=False, repr=False, compare=False)
    _replacements: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _checked(
            self.vocab_size, "vocab_size", "an int in [1, 2**32)", lambda v: 0 < v < 2**32, int
        )
        for name in ("mask_token_id", "seed"):
            value = getattr(self, name)
            if isinstance(value, np.integer | torch.Tensor):
                object.__setattr__(self, name, value := int(value))
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(
                f"mask_token_id={self.mask_token_id} is outside the vocabulary "
                f"[0, {self.vocab_size})"
            )
        try:
            specials = {int(i) for i in self.special_ids}
        except (TypeError, ValueError):
            raise TypeError(
                f"special_ids must be an iterable of ints, got {self.special_ids!r}"
            ) from None
        bad = sorted(i for i in specials if not 0 <= i < self.vocab_size)
        if bad:
            raise ValueError(f"special_ids {bad} are outside the vocabulary [0, {self.vocab_size})")
        specials.add(self.mask_token_id)
        object.__setattr__(self, "special_ids", tuple(sorted(specials)))
        for name in ("mask_rate", "mask_fraction", "random_fraction"):
            value = _checked(getattr(self, name), name, "a number in [0, 1]", lambda v: 0 <= v <= 1)
            object.__setattr__(self, name, float(value))
        if self.mask_fraction + self.random_fraction > 1.0 + 1e-9:
            raise ValueError(
                f"mask_fraction + random_fraction must be <= 1 (the rest stay unchanged), got "
                f"{self.mask_fraction} + {self.random_fraction}"
            )
        if not isinstance(self.exact, bool):
            raise TypeError(f"exact must be a bool, got {type(self.exact).__name__}")
        is_special = np.zeros(self.vocab_size, dtype=bool)
        is_special[list(specials)] = True
        replacements = np.flatnonzero(~is_special)
        if self.random_fraction > 0 and replacements.size == 0:
            raise ValueError(
                "random_fraction > 0 but every id is special, so there is no random "
                "replacement to draw; set random_fraction=0"
            )
        for name, table in (("_is_special", is_special), ("_replacements", replacements)):
            table.flags.writeable = False
            object.__setattr__(self, name, table)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> MLMCorruption:
        """Build from any tokenizer with mask_token_id, vocab_size and special_ids attributes
        (unmask.tokenizer.Tokenizer); kwargs set the other fields."""
        return cls(tokenizer.mask_token_id, tokenizer.vocab_size, tokenizer.special_ids, **kwargs)

    # ---------------------------------------------------------------- inputs
    def _inputs(self, input_ids, attention_mask, special_tokens_mask, sample_ids):
        """ids int64 (B, L), maskable bool (B, L), pos uint64 (B, L), sample ids uint64 (B,)."""
        ids = _int_matrix(input_ids, "input_ids")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            raise ValueError(
                f"input_ids holds {bad}, outside the vocabulary [0, {self.vocab_size}); "
                "check that the tokenizer and vocab_size belong together"
            )
        attention, pos = _real_positions(attention_mask, ids.shape)
        maskable = ~self._is_special[ids] & attention
        if special_tokens_mask is not None:
            maskable &= ~_bool_matrix(special_tokens_mask, "special_tokens_mask", ids.shape)
        if sample_ids is None:
            sid = np.arange(ids.shape[0], dtype=np.uint64)
        else:
            s = _to_numpy(sample_ids, "sample_ids")
            if s.dtype.kind not in "iu" or s.shape != (ids.shape[0],):
                raise ValueError(
                    f"sample_ids must be {ids.shape[0]} integers (one per row), got "
                    f"shape {tuple(s.shape)} dtype {s.dtype}"
                )
            sid = s.astype(np.int64).view(np.uint64)
        return ids, maskable, pos, sid

    def _words(self, word_ids, maskable, document_ids):
        """Valid word tokens, word starts, per-row word ordinals and document ids (zeros for
        None), bool / bool / int64 / int64 (B, L).

        A word starts wherever the word id changes (or the document does), so word ids that
        restart at 0 in the second text of a pair or in each packed document are fine.
        """
        shape = maskable.shape
        w = _int_matrix(word_ids, "word_ids", shape)
        if w.size and w.min() < -1:
            raise ValueError(
                "word_ids must be >= 0, or -1 for specials and padding (None in word_ids())"
            )
        if document_ids is None:
            doc = np.zeros(shape, dtype=np.int64)
        else:
            doc = _int_matrix(document_ids, "document_ids", shape)
        valid = maskable & (w >= 0)
        same = np.zeros(shape, dtype=bool)
        same[:, 1:] = valid[:, :-1] & (w[:, 1:] == w[:, :-1]) & (doc[:, 1:] == doc[:, :-1])
        start = valid & ~same
        ordinal = np.cumsum(start, axis=1) - 1
        return valid, start, ordinal, doc

    # ------------------------------------------------------------- replacing
    def _apply(self, ids, selected, sid, pos, action_counter=None, action_stream=_ACTION):
        """Replace the selected positions 80/10/10; the decision is per position, or per unit
        (word, span) when action_counter names each position's unit."""
        labels = np.where(selected, ids, -100)
        out = ids.copy()
        b, t = np.nonzero(selected)
        counter = (pos if action_counter is None else action_counter)[b, t]
        v = _hash(_row_keys(self.seed, action_stream, sid)[b], counter) >> _S11
        to_mask = v < _threshold(self.mask_fraction)
        to_random = ~to_mask & (v < _threshold(self.mask_fraction + self.random_fraction))
        out[b[to_mask], t[to_mask]] = self.mask_token_id
        rb, rt = b[to_random], t[to_random]
        bits = _hash(_row_keys(self.seed, _RANDOM, sid)[rb], pos[rb, rt])
        out[rb, rt] = self._replacements[_below(bits, self._replacements.size)]
        return out, labels

    @staticmethod
    def _tensors(out: np.ndarray, labels: np.ndarray, like: Any):
        """Both arrays as tensors on the device of `like` (the CPU unless it is a tensor)."""
        device = like.device if isinstance(like, torch.Tensor) else None
        return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (out, labels))

    def _per_row_budget(self, maskable: np.ndarray) -> np.ndarray:
        # round half up, stated in the docs (Python's round() would round half to even).
        return np.floor(self.mask_rate * maskable.sum(axis=1) + 0.5).astype(np.int64)

    # ---------------------------------------------------------------- tokens
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        special_tokens_mask: torch.Tensor | None = None,
        sample_ids: torch.Tensor | Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-level BERT corruption.

        input_ids: int (B, L). attention_mask: bool or 0/1 (B, L), True = real token.
        special_tokens_mask: bool or 0/1 (B, L), True = never choose (on top of special_ids).
        sample_ids: int (B,), the dataset index of each row (default arange(B): see the
          module docstring, and `content_sample_ids` for a stream of batches).
        Returns (corrupted_ids, labels), int64 (B, L).
        """
        ids, maskable, pos, sid = self._inputs(
            input_ids, attention_mask, special_tokens_mask, sample_ids
        )
        bits = _hash(_row_keys(self.seed, _SELECT, sid)[:, None], pos)
        if self.exact:
            # The k smallest hashes among maskable tokens: k exact, order fixed per sample.
            keys = np.where(maskable, bits, _ALL_ONES)
            k = self._per_row_budget(maskable)
            kth = np.take_along_axis(np.sort(keys, axis=1), np.maximum(k - 1, 0)[:, None], 1)
            selected = maskable & (keys <= kth) & (k > 0)[:, None]
        else:
            selected = maskable & ((bits >> _S11) < _threshold(self.mask_rate))
        return self._tensors(*self._apply(ids, selected, sid, pos), input_ids)

    def mask_positions(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | Sequence[Sequence[int]],
        attention_mask: torch.Tensor | None = None,
        split: bool = False,
        sample_ids: torch.Tensor | Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt exactly the given positions (a textbook example, a fixed evaluation set).

        positions: bool (B, L) (True = corrupt), or one sequence of token indices per row.
        split: False writes [MASK] at every position; True applies the mask/random/keep split
          with this corruption's fractions and seed.
        A position on a special token or on padding is an error: it could only be a mistake.
        Returns (corrupted_ids, labels), int64 (B, L).
        """
        ids, maskable, pos, sid = self._inputs(input_ids, attention_mask, None, sample_ids)
        B, L = ids.shape
        if isinstance(positions, torch.Tensor | np.ndarray):
            chosen = _bool_matrix(positions, "positions", (B, L))
        else:
            rows = list(positions)
            if len(rows) != B:
                raise ValueError(f"positions has {len(rows)} rows, input_ids has {B}")
            chosen = np.zeros((B, L), dtype=bool)
            for b, row in enumerate(rows):  # one loop per row, not per token
                idx = _to_numpy(list(row), "positions")
                if idx.size and (idx.dtype.kind not in "iu" or idx.min() < -L or idx.max() >= L):
                    raise ValueError(
                        f"positions[{b}] = {list(row)} must be token indices in [0, {L})"
                    )
                chosen[b, idx.astype(np.int64)] = True
        bad = chosen & ~maskable
        if bad.any():
            b, t = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"position ({b}, {t}) holds id {ids[b, t]}, a special token or padding; "
                "only ordinary tokens can be masked"
            )
        if split:
            return self._tensors(*self._apply(ids, chosen, sid, pos), input_ids)
        out = np.where(chosen, self.mask_token_id, ids)
        return self._tensors(out, np.where(chosen, ids, -100), input_ids)

    # ------------------------------------------------------------ whole word
    def whole_word(
        self,
        input_ids: torch.Tensor,
        word_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        special_tokens_mask: torch.Tensor | None = None,
        sample_ids: torch.Tensor | Sequence[int] | None = None,
        document_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole-word masking: all pieces of a word are chosen together, each word with
        probability p (so about p of the tokens), and one mask/random/keep decision covers
        the whole word (random replacements are drawn per piece).

        word_ids: int (B, L), the word each token belongs to, -1 for specials and padding
          (tokenizers' `word_ids()` with None -> -1; `BatchEncoding.word_ids`).
        document_ids: optional int (B, L); a word never continues across a document change.
        With exact=True, words are taken in a random order while their pieces fit in
          round(p * n) tokens: at most that many, exactly that many when words are single
          pieces.
        Returns (corrupted_ids, labels), int64 (B, L).
        """
        ids, maskable, pos, sid = self._inputs(
            input_ids, attention_mask, special_tokens_mask, sample_ids
        )
        valid, start, ordinal, _ = self._words(word_ids, maskable, document_ids)
        word_counter = np.maximum(ordinal, 0).astype(np.uint64)
        bits = _hash(_row_keys(self.seed, _WORD, sid)[:, None], word_counter)
        if self.exact:
            selected = valid & self._whole_word_budget(valid, start, ordinal, bits)
        else:
            selected = valid & ((bits >> _S11) < _threshold(self.mask_rate))
        out, labels = self._apply(ids, selected, sid, pos, word_counter, _WORD_ACTION)
        return self._tensors(out, labels, input_ids)

    def _whole_word_budget(self, valid, start, ordinal, bits) -> np.ndarray:
        B = valid.shape[0]
        W = int(ordinal.max(initial=0)) + 1  # most words in a row, at least 1
        b, t = np.nonzero(valid)
        word_len = np.bincount(b * W + ordinal[b, t], minlength=B * W).reshape(B, W)
        key = np.full((B, W), _ALL_ONES)
        sb, st = np.nonzero(start)
        key[sb, ordinal[sb, st]] = bits[sb, st]
        order = np.argsort(key, axis=1, kind="stable")
        budget = self._per_row_budget(valid)[:, None]
        fits = np.cumsum(np.take_along_axis(word_len, order, 1), 1) <= budget
        chosen = np.zeros((B, W), dtype=bool)
        np.put_along_axis(chosen, order, fits, 1)
        return chosen[np.arange(B)[:, None], np.maximum(ordinal, 0)]

    # ----------------------------------------------------------------- spans
    def spans(
        self,
        input_ids: torch.Tensor,
        word_ids: torch.Tensor,
        document_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        special_tokens_mask: torch.Tensor | None = None,
        sample_ids: torch.Tensor | Sequence[int] | None = None,
        geometric_p: float = 0.2,
        max_span: int = 10,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SpanBERT span masking: runs of whole words, one mask/random/keep decision per span.

        Span lengths (in words) follow Geometric(geometric_p) on 1..max_span, renormalised
        (see expected_span_length). Each document's words are cut into alternating gaps and
        spans (a renewal process); gaps are at least one word (when p allows) so spans never
        merge, and their mean, mean_span * (1 - p) / p, makes about p of the words (and so of
        the tokens) masked. Documents restart the process: a span never crosses a document
        boundary, nor a -1 word id run between texts of a pair.

        word_ids: int (B, L), -1 for specials and padding. document_ids: optional int (B, L),
          e.g. for packed rows (a change of id is a boundary). exact=True is not supported.
        Returns (corrupted_ids, labels), int64 (B, L).
        """
        mean_span = expected_span_length(geometric_p, max_span)  # checks both arguments
        if self.exact:
            raise ValueError(
                "exact=True is not supported by spans (span lengths are random, so the count "
                "cannot be fixed); use whole_word or __call__ for exact counts"
            )
        ids, maskable, pos, sid = self._inputs(
            input_ids, attention_mask, special_tokens_mask, sample_ids
        )
        valid, start, _, doc = self._words(word_ids, maskable, document_ids)
        p = self.mask_rate
        wb, wt = np.nonzero(start)  # words in row-major order, (W,)
        W = wb.size
        if W == 0 or p == 0.0:
            return self._tensors(ids.copy(), np.full(ids.shape, -100, np.int64), input_ids)

        # Units: maximal runs of words in one row and one document (or one text of a pair:
        # a -1 word id between two words also ends a unit). A word continues its unit when the
        # token before it is the previous word's last piece, in the same document.
        before = np.maximum(wt - 1, 0)
        new_unit = ~((wt > 0) & valid[wb, before] & (doc[wb, wt] == doc[wb, before]))
        unit = np.cumsum(new_unit) - 1  # (W,)
        first = np.flatnonzero(new_unit)  # (U,) global index of each unit's first word
        U = first.size
        unit_len = np.diff(np.append(first, W))
        unit_row = wb[first]  # non-decreasing
        doc_ord = np.arange(U) - np.searchsorted(unit_row, unit_row)  # unit's index in its row

        # Pieces: 2 * unit_len slots per unit, alternating span/gap; spans are >= 1 word, so
        # the slots always cover the unit even when gaps may be empty.
        slots = 2 * unit_len
        slot_unit = np.repeat(np.arange(U), slots)
        slot_first = np.repeat(np.cumsum(slots) - slots, slots)
        j = np.arange(slot_unit.size) - slot_first  # piece index inside its unit
        counter = (doc_ord[slot_unit].astype(np.uint64) << _S32) | j.astype(np.uint64)
        u = _uniform(_hash(_row_keys(self.seed, _PIECE, sid)[unit_row[slot_unit]], counter))
        starts_span = (
            _hash(_row_keys(self.seed, _PHASE, sid)[unit_row], doc_ord.astype(np.uint64)) >> _S11
        ) < _threshold(p)
        is_span_piece = ((j & 1) == 0) == starts_span[slot_unit]
        length = np.where(
            is_span_piece,
            _span_lengths(u, geometric_p, max_span),
            _gap_lengths(u, p, mean_span),
        )
        cs = np.cumsum(length)
        within = cs - (cs - length)[slot_first]
        ends = first[slot_unit] + np.minimum(within, unit_len[slot_unit])  # non-decreasing
        piece = np.searchsorted(ends, np.arange(W), side="right") - 2 * first[unit]
        word_in_span = ((piece & 1) == 0) == starts_span[unit]
        span_counter = (doc_ord[unit].astype(np.uint64) << _S32) | piece.astype(np.uint64)

        # Back to tokens: each valid token's global word index (words are in row-major order).
        gw = np.clip(np.cumsum(start).reshape(start.shape) - 1, 0, W - 1)
        selected = valid & word_in_span[gw]
        out, labels = self._apply(ids, selected, sid, pos, span_counter[gw], _SPAN_ACTION)
        return self._tensors(out, labels, input_ids)

    # ---------------------------------------------------------------- ELECTRA
    def electra_sample(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        generator_logits: torch.Tensor,
        sample_ids: torch.Tensor | Sequence[int] | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ELECTRA: fill the masked positions with tokens sampled from the generator.

        input_ids: int (B, L), the corrupted ids the generator saw. labels: int (B, L), from a
          corruption method (-100 = not masked).
        generator_logits: float (B, L, V') or (N, V') for the N = (labels != -100).sum()
          masked positions in row-major order (an MLM head run on masked positions only);
          V' >= vocab_size (extra padded columns are never sampled). Not differentiated.
        temperature: > 0, divides the logits. Special ids are never sampled.
        Returns (discriminator_ids int64 (B, L), replaced bool (B, L)): the original ids with
          samples at masked positions, and True where the sample differs from the original
          (a sample equal to the original counts as real, as in ELECTRA).
        Sampling is by inverse CDF with one hashed uniform per position, so it is reproducible
        per (seed, sample id, position) on any device.
        """
        labels_np = _int_matrix(labels, "labels")
        ids = _int_matrix(input_ids, "input_ids", labels_np.shape)
        logits = generator_logits
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise TypeError("generator_logits must be a float tensor")
        _checked(temperature, "temperature", "a number > 0", lambda v: v > 0)
        masked = labels_np != -100
        if (labels_np[masked] < 0).any() or (labels_np[masked] >= self.vocab_size).any():
            raise ValueError("labels must be -100 or ids in the vocabulary")
        _, _, pos, sid = self._inputs(ids, None, None, sample_ids)
        b, t = np.nonzero(masked)
        logits = logits.detach()
        if logits.dim() == 3 and logits.shape[:2] == labels_np.shape:
            device = logits.device
            logits = logits[torch.from_numpy(b).to(device), torch.from_numpy(t).to(device)]
        elif logits.dim() != 2 or logits.shape[0] != b.size:
            raise ValueError(
                f"generator_logits must be (B, L, V) with (B, L) = {labels_np.shape} like labels, "
                f"or (N, V) with N = {b.size} masked positions; got shape {tuple(logits.shape)}"
            )
        if logits.shape[-1] < self.vocab_size:
            raise ValueError(
                f"generator_logits has {logits.shape[-1]} columns, fewer than vocab_size="
                f"{self.vocab_size}"
            )
        originals = np.where(masked, labels_np, ids)
        fake = originals.copy()
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[: self.vocab_size] = torch.from_numpy(~self._is_special).to(logits.device)
        logits = (logits.float() / temperature).masked_fill(~allowed, -math.inf)
        cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
        u = _uniform(_hash(_row_keys(self.seed, _ELECTRA, sid)[b], pos[b, t]))
        target = torch.from_numpy(u).to(cdf) * cdf[:, -1]  # scale: float sums miss 1
        drawn = torch.searchsorted(cdf, target[:, None]).squeeze(1)
        fake[b, t] = drawn.clamp_(max=logits.shape[-1] - 1).cpu().numpy()
        return self._tensors(fake, fake != originals, input_ids)


def _span_lengths(u: np.ndarray, g: float, max_span: int) -> np.ndarray:
    """int64 in [1, max_span]: inverse CDF of Geometric(g) truncated to 1..max_span."""
    if g >= 1.0:
        return np.ones(u.shape, dtype=np.int64)
    q = 1.0 - g
    k = np.ceil(np.log1p(-u * (1.0 - q**max_span)) / math.log(q))
    return np.clip(k, 1, max_span).astype(np.int64)


def _gap_lengths(u: np.ndarray, p: float, mean_span: float) -> np.ndarray:
    """int64 >= 0 with mean mean_span * (1 - p) / p, so spans cover about p of the words.
    At least 1 when that mean allows it, so that two spans never touch."""
    mean = mean_span * (1.0 - p) / p
    floor = 1 if mean >= 1.0 else 0
    extra = mean - floor  # geometric on {0, 1, ...} with this mean
    if extra <= 0.0:
        return np.full(u.shape, floor, dtype=np.int64)
    k = np.floor(np.log(u) / math.log(extra / (1.0 + extra)))
    return (floor + np.minimum(k, 2**31)).astype(np.int64)
