"""`unmask demo`: the main job. Pretrain a small model on the Python docstrings of this machine
for a few minutes, then print fill-mask predictions and the loss curve's path.

`unmask demo --tour` prints a tour of attention masks and MLM corruption the way textbooks draw
them instead; it needs no download and no model: every tensor is built on the spot.
"""

from __future__ import annotations

from pathlib import Path

# bert-base-uncased ids: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
BERT_SPECIALS = (0, 100, 101, 102, 103)
BERT_VOCAB = 30522


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)))


def tour() -> None:
    """Print the tour to stdout."""
    import torch  # here, not at the top: `unmask --help` imports every command module

    from unmask import masks
    from unmask.collator import MLMCollator
    from unmask.corruption import MLMCorruption

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


def print_fill_mask(model_dir, probes=PROBES, top_k: int = 5) -> None:
    """Load the model just trained from `model_dir` into the fill-mask pipeline and print its
    top_k fillers per probe (special tokens left out: a filler is a word, not [SEP])."""
    from unmask.pipelines import pipeline

    fill = pipeline("fill-mask", model_dir)
    specials = fill.tokenizer.special_ids
    mask = fill.tokenizer.special_tokens["mask"]
    _section("Fill in the blank with the model just trained")
    for text in probes:
        guesses = fill(text.replace("[MASK]", mask), top_k=top_k + len(specials))
        guesses = [g for g in guesses if g["token"] not in specials][:top_k]
        shown = ", ".join(f"{g['token_str']} {g['score']:.1%}" for g in guesses)
        print(f"{text:52s} -> {shown}")


def cmd_demo(args) -> int:
    if args.tour:
        tour()
        return 0
    from unmask.commands.pretrain import run_pretraining

    try:
        result = run_pretraining(args)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print_fill_mask(Path(args.out) / "model")
    ev, baseline = result.get("eval"), result.get("baseline")
    if ev and baseline:
        print(f"\nvalidation loss {ev['loss']:.3f} vs {baseline:.3f} for unigram counts; loss "
              f"curve: {Path(args.out) / 'loss.png'}")
    return 0


def register(sub) -> None:
    from unmask.commands.pretrain import add_training_arguments

    demo = sub.add_parser(
        "demo", help="pretrain a small model on Python docstrings for ~3 minutes, then fill "
        "in blanks (--tour: masks and corruption)")
    demo.add_argument("--tour", action="store_true",
                      help="print the tour of attention masks and MLM corruption instead")
    add_training_arguments(demo)
    # A short budget on two CPU cores: a small model and many small steps (docstrings are
    # short: 64-token rows lose little), no dropout (as Cramming). Fewer, larger steps leave
    # the model on the unigram plateau ("the", ".") when the time is up.
    demo.set_defaults(func=cmd_demo, minutes=3.0, preset="tiny", out="runs/demo", dropout=0.0,
                      lr=2e-3, seq_len=64, batch_size=16, corpus_chars=3_000_000,
                      eval_every=200, save_every=400, overwrite=True)
