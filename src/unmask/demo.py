"""`unmask demo --tour`: attention masks and MLM corruption, printed the way textbooks draw them.

Needs no download and no model: every tensor below is built on the spot.
"""

from __future__ import annotations

import torch

from unmask import masks
from unmask.collator import MLMCollator
from unmask.corruption import MLMCorruption

# bert-base-uncased ids: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
BERT_SPECIALS = (0, 100, 101, 102, 103)
BERT_VOCAB = 30522


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


def tour() -> None:
    """Print the tour to stdout."""
    _section("A causal mask over 4 positions (0 = may attend, -∞ = may not)")
    print(masks.causal(4))

    _section("Causal & padding: 'The cat sat' padded to 5 tokens")
    tokens = ["The", "cat", "sat", "PAD", "PAD"]
    padded = masks.padding(torch.tensor([[1, 1, 1, 0, 0]]))
    print((masks.causal(5) & padded).render(labels=tokens))

    _section("Local window (one token each side) | a global [CLS]")
    labels = ["[CLS]", "a", "b", "c", "d", "e"]
    print((masks.window(6, left=1, right=1) | masks.global_tokens(6, [0])).render(labels=labels))

    _section("Two documents packed into one row (3 + 2 tokens): no attention across")
    print(masks.document_from_lengths([3, 2]).render(labels=["A1", "A2", "A3", "B1", "B2"]))

    _section("BigBird-style block-sparse: window + global + random blocks (seed 0)")
    print(masks.block_sparse(16, block_size=2, window_blocks=3, global_blocks=1,
                             random_blocks=1, seed=0))

    _section("MLM batch: 'I love [MASK] .' and 'NLP is [MASK]' (bert-base-uncased ids)")
    corruption = MLMCorruption(mask_token_id=103, vocab_size=BERT_VOCAB,
                               special_ids=BERT_SPECIALS)
    collate = MLMCollator(corruption, pad_token_id=0, max_length=7)
    examples = [[101, 1045, 2293, 10733, 1012, 102], [101, 17953, 2003, 4569, 102]]
    batch = collate(examples, positions=[[3], [3]])
    for name in ("input_ids", "attention_mask", "labels"):
        print(f"{name:15s}{batch[name].tolist()}")

    _section("BERT corruption of 100,000 tokens, p = 0.15, 80% [MASK] / 10% random / 10% kept")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, BERT_VOCAB, (1000, 100), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    corrupted, labels = corruption(ids)
    chosen = labels != -100
    n = int(chosen.sum())
    masked = int((corrupted[chosen] == 103).sum())
    kept = int((corrupted[chosen] == ids[chosen]).sum())
    print(f"selected {n / ids[:, 1:-1].numel():.2%} of ordinary tokens; of those "
          f"{masked / n:.1%} [MASK], {(n - masked - kept) / n:.1%} random, {kept / n:.1%} kept;")
    print(f"[CLS]/[SEP] selected: {int(chosen[:, [0, -1]].sum())}; "
          f"same seed, same corruption: {torch.equal(corruption(ids)[0], corrupted)}")
