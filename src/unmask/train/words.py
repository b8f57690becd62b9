"""Word ids for packed token ids, from the vocabulary alone (whole-word and span masking).

Packed shards store ids, not words; whether a token continues the previous word can be read
from its string: WordPiece marks continuations with "##", byte-level BPE and SentencePiece
mark word *starts* with "Ġ" / "▁".
"""

from __future__ import annotations

import numpy as np
import torch

_START_MARKS = ("Ġ", "▁")


def continuation_table(vocab: dict[str, int], vocab_size: int) -> np.ndarray:
    """bool (V,): True where a token continues the word before it.

    vocab: token string -> id (tokenizers' get_vocab()); ids >= vocab_size are left out.
    """
    table = np.zeros(vocab_size, dtype=bool)
    wordpiece = any(t.startswith("##") for t in vocab)
    mark = next((m for m in _START_MARKS if any(t.startswith(m) for t in vocab)), None)
    if not wordpiece and mark is None:
        return table  # unknown scheme: every token is its own word
    for token, i in vocab.items():
        if i < vocab_size:
            # without the start mark, punctuation pieces also start words in practice
            table[i] = token.startswith("##") if wordpiece else (
                not token.startswith(mark) and token.isalnum())
    return table


def word_ids(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor,
             continues: np.ndarray) -> torch.Tensor:
    """int64 (B, L) word index per token, -1 on specials and padding.

    input_ids: int64 (B, L). special_tokens_mask: bool (B, L). continues: continuation_table.
    A word starts at a non-continuation token or right after a special token.
    """
    ids = input_ids.cpu().numpy()
    special = special_tokens_mask.cpu().numpy()
    after_special = np.ones_like(special)
    after_special[:, 1:] = special[:, :-1]
    start = ~special & (~continues[ids] | after_special)
    words = np.cumsum(start, axis=1) - 1
    return torch.from_numpy(np.where(special, -1, words).astype(np.int64))


__all__ = ["continuation_table", "word_ids"]
