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


# --- the main job: pretrain on docstrings, then fill in the blanks ---------------------------

PROBES = (
    "Return the [MASK] of the list.",
    "If the file does not [MASK], an error is raised.",
    "This function is not [MASK] for public use.",
    "The default value is [MASK].",
    "Convert the string to an [MASK].",
)


@torch.no_grad()
def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[dict]:
    """The top_k fillers of the first [MASK] in `text`: [{"token_str", "score"}, ...].

    model: a MaskedLM; tokenizer: an unmask Tokenizer (its mask token is written [MASK] or
    as the tokenizer names it).
    """
    text = text.replace("[MASK]", tokenizer.special_tokens["mask"])
    enc = tokenizer.encode_batch([text])
    ids = enc.input_ids  # (1, L)
    where = (ids[0] == tokenizer.mask_token_id).nonzero()
    if len(where) == 0:
        raise ValueError(f"{text!r} has no mask token to fill")
    model.eval()
    logits = model(ids, attention_mask=enc.attention_mask).logits[0, int(where[0])]  # (V,)
    probs = torch.softmax(logits.float(), dim=-1)
    specials = torch.tensor(sorted(tokenizer.special_ids))
    probs[specials[specials < len(probs)]] = 0.0  # a filler is a word, not [SEP]
    scores, best = probs.topk(top_k)
    return [{"token_str": tokenizer.id_to_token(int(i)), "score": float(s)}
            for s, i in zip(scores, best, strict=True)]


def print_fill_mask(model_dir, probes=PROBES) -> None:
    """Load a trained model and its tokenizer from `model_dir`, print predictions per probe."""
    from unmask.checkpoints import load
    from unmask.tokenizer import Tokenizer

    model = load(model_dir, task="masked_lm")
    tokenizer = Tokenizer.from_pretrained(model_dir)
    _section("Fill in the blank with the model just trained")
    for text in probes:
        guesses = fill_mask(model, tokenizer, text)
        shown = ", ".join(f"{g['token_str']} {g['score']:.1%}" for g in guesses)
        print(f"{text:52s} -> {shown}")
