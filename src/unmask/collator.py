"""Encoded examples -> one padded, corrupted MLM batch (a DataLoader's collate_fn).

    loader = DataLoader(dataset, batch_size=32, collate_fn=MLMCollator(corruption, pad_token_id=0))

Each example is a dict with "input_ids" (list, tuple, 1-D tensor or array of ints) and, when
present, "attention_mask", "special_tokens_mask", "word_ids" (None or -1 for no word),
"document_ids", "token_type_ids" and "sample_id" (the dataset index that makes the corruption
reproducible whatever the batch; see unmask.corruption). A plain sequence of ids is an
example too. Rows are right-padded with pad_token_id, without any Python loop over tokens.

Axis legend:  B = examples in the batch,  L = padded length,  T = tokens of all examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import numpy as np
import torch

from unmask.corruption import MLMCorruption, content_sample_ids

__all__ = ["MLMCollator"]

_MODES = ("token", "whole_word", "span")


def _field(examples: list[Any], key: str) -> list[Any] | None:
    """The key's value in every example, None if no example has it; error if only some do."""
    if not isinstance(examples[0], Mapping):
        return None
    have = [key in e and e[key] is not None for e in examples]
    if not any(have):
        return None
    if not all(have):
        raise ValueError(
            f"example {have.index(False)} has no {key!r} but others do; give it to all or none"
        )
    return [e[key] for e in examples]


def _flatten(
    rows: list[Any],
    name: str,
    lengths: np.ndarray | None,
    none_as: int | None = None,
    kinds: str = "iub",
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-example sequences into int64 (T,) and their lengths int64 (B,),
    checking that values are integers (numpy dtype kinds `kinds`) and lengths match."""
    flat = None  # the values as a Python list, when the slow path needed one
    if all(isinstance(r, list | tuple) for r in rows):
        counts = [len(r) for r in rows]
        try:
            # Fast path: fromiter is C speed but truncates floats, so also check that the
            # Python sum stays an int (any float or numpy scalar would change its type).
            arr = np.fromiter(chain.from_iterable(rows), np.int64, count=sum(counts))
            exact = type(sum(chain.from_iterable(rows))) is int
        except (TypeError, ValueError, OverflowError):
            exact = False
        if not exact:  # slow path: find out what the values are, for a precise error
            # word_ids() gives None for specials: read as none_as (a no-op when that is None)
            flat = [none_as if x is None else x for x in chain.from_iterable(rows)]
            try:
                arr = np.array(flat)
            except (TypeError, ValueError, OverflowError):
                arr = np.array(flat, dtype=object)  # ragged or nested: reported below
    else:
        parts = []
        for i, r in enumerate(rows):
            a = r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r)
            if a.ndim != 1:
                raise ValueError(
                    f"example {i} {name} must be a 1-D sequence of ints, got "
                    f"{type(r).__name__} of shape {a.shape}; encode text with a tokenizer first"
                )
            parts.append(a)
        counts = [a.size for a in parts]
        arr = np.concatenate(parts)  # rows is never empty: a batch has an example
    if arr.size and (arr.ndim != 1 or arr.dtype.kind not in kinds):
        values = flat if flat is not None else arr.ravel().tolist()
        odd = next((x for x in values if type(x) is not int), values[0])
        raise TypeError(
            f"{name} must be sequences of integers, found {odd!r} ({arr.dtype} values); "
            "pass token ids as ints (lists, 1-D int tensors or arrays)"
        )
    if lengths is not None and not np.array_equal(counts, lengths):
        i = int(np.flatnonzero(np.asarray(counts) != lengths)[0])
        raise ValueError(
            f"example {i} has {counts[i]} {name} but {lengths[i]} input_ids; they must match"
        )
    return arr.astype(np.int64, copy=False), np.asarray(counts, dtype=np.int64)


@dataclass(frozen=True)
class MLMCollator:
    """Pad a list of encoded examples and corrupt them for masked language modelling.

    corruption: the MLMCorruption to apply (mask id, vocabulary, fractions, seed).
    pad_token_id: written after each row's last token (right padding); must be one of the
      corruption's special_ids, so a random replacement can never be padding.
    mode: "token" (BERT), "whole_word" or "span" (SpanBERT); the last two need "word_ids".
    pad_to_multiple_of: round the padded length up (8 suits tensor cores).
    max_length: pad every batch to exactly this length (static shapes); longer rows are an
      error, since truncation belongs to the tokenizer.
    geometric_p, max_span: the span length distribution for mode="span".
    """

    corruption: MLMCorruption
    pad_token_id: int = 0
    mode: Literal["token", "whole_word", "span"] = "token"
    pad_to_multiple_of: int | None = None
    max_length: int | None = None
    geometric_p: float = 0.2
    max_span: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.corruption, MLMCorruption):
            raise TypeError(
                f"corruption must be an MLMCorruption, got {type(self.corruption).__name__}"
            )
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if not isinstance(self.pad_token_id, int) or isinstance(self.pad_token_id, bool):
            raise TypeError(f"pad_token_id must be an int, got {self.pad_token_id!r}")
        if self.pad_token_id not in self.corruption.special_ids:
            raise ValueError(
                f"pad_token_id={self.pad_token_id} is not in corruption.special_ids "
                f"{self.corruption.special_ids}, so random replacements could write padding; "
                "add it to special_ids"
            )
        for name in ("pad_to_multiple_of", "max_length"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")

    def __call__(
        self,
        examples: Sequence[Mapping[str, Any] | Sequence[int]],
        positions: Sequence[Sequence[int]] | torch.Tensor | None = None,
        sample_ids: Sequence[int] | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pad and corrupt.

        examples: B dicts (or plain id sequences), see the module docstring.
        positions: corrupt exactly these token indices per example (one sequence per example,
          or a bool (B, L) tensor) with [MASK], instead of drawing them: a textbook example
          or a fixed evaluation set. mode is ignored then.
        sample_ids: int (B,), overrides the examples' "sample_id". Without either, each row's
          id is a hash of its tokens (unmask.corruption.content_sample_ids): batch after batch
          draws differ, and a text is corrupted the same way in any batch or worker.
        Returns int64 (B, L) tensors: input_ids, attention_mask (1 = real token, 0 = padding,
        as Hugging Face models take it), labels (-100 except at corrupted positions, where they
        hold the original id) and, when the examples have them, token_type_ids.
        """
        examples = list(examples)
        if not examples:
            raise ValueError("examples is empty: a batch needs at least one example")
        dicts = isinstance(examples[0], Mapping)
        if dicts and not all(isinstance(e, Mapping) and "input_ids" in e for e in examples):
            raise ValueError("every example must be a dict with 'input_ids'")
        rows = [e["input_ids"] for e in examples] if dicts else examples
        ids, lengths = _flatten(rows, "input_ids", None, kinds="iu")
        vocab = self.corruption.vocab_size
        bad = (ids < 0) | (ids >= vocab)
        if bad.any():
            first = int(np.argmax(bad))
            row = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
            raise ValueError(
                f"example {row} holds id {ids[first]}, outside the vocabulary [0, {vocab}); "
                "was it encoded with another tokenizer?"
            )

        B = len(rows)
        longest = int(lengths.max())
        if self.max_length is not None and longest > self.max_length:
            raise ValueError(
                f"example {int(lengths.argmax())} has {longest} tokens, more than "
                f"max_length={self.max_length}; truncate when encoding"
            )
        width = self.max_length or longest
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        # Where each token lands in the flattened (B * L) batch.
        starts = np.cumsum(lengths) - lengths
        index = np.repeat(np.arange(B) * width - starts, lengths) + np.arange(ids.size)

        def pad(flat: np.ndarray, fill: int) -> np.ndarray:
            out = np.full(B * width, fill, dtype=np.int64)
            out[index] = flat
            return out.reshape(B, width)

        def optional(key: str, fill: int, none_as: int | None = None) -> np.ndarray | None:
            values = _field(examples, key)
            if values is None:
                return None
            return pad(_flatten(values, key, lengths, none_as)[0], fill)

        ids_t = torch.from_numpy(pad(ids, self.pad_token_id))
        attention = pad(np.ones(ids.size, np.int64), 0)
        given = _field(examples, "attention_mask")
        # Unpadded examples carry all-ones masks; only read them when some row has a 0.
        if given is not None and not all(isinstance(r, list) and 0 not in r for r in given):
            attention &= pad(_flatten(given, "attention_mask", lengths)[0], 0) != 0
        special = optional("special_tokens_mask", 1)
        token_types = optional("token_type_ids", 0)

        found = _field(examples, "sample_id") if sample_ids is None else None
        if found is not None:
            sample_ids = np.asarray([int(s) for s in found], dtype=np.int64)
        elif sample_ids is None:
            sample_ids = content_sample_ids(ids_t, attention)
        if positions is not None:
            corrupted, labels = self.corruption.mask_positions(
                ids_t, positions, attention_mask=attention, sample_ids=sample_ids
            )
        elif self.mode == "token":
            corrupted, labels = self.corruption(ids_t, attention, special, sample_ids)
        else:
            word_ids = optional("word_ids", -1, none_as=-1)
            if word_ids is None:
                raise ValueError(
                    f"mode={self.mode!r} needs 'word_ids' in every example: encode with "
                    "unmask's BatchEncoding.word_ids, or a tokenizers Encoding.word_ids / "
                    "transformers' encoding.word_ids() (None for specials is fine)"
                )
            documents = optional("document_ids", -1)
            if self.mode == "whole_word":
                corrupted, labels = self.corruption.whole_word(
                    ids_t, word_ids, attention, special, sample_ids, documents
                )
            else:
                corrupted, labels = self.corruption.spans(
                    ids_t, word_ids, documents, attention, special, sample_ids,
                    geometric_p=self.geometric_p, max_span=self.max_span,
                )
        batch = {
            "input_ids": corrupted,
            "attention_mask": torch.from_numpy(attention),
            "labels": labels,
        }
        if token_types is not None:
            batch["token_type_ids"] = torch.from_numpy(token_types)
        return batch
