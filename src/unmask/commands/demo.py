"""`unmask demo`: the main job. Pretrain a small model on the Python docstrings of this machine
for a few minutes, then print fill-mask predictions and the loss curve's path.
`unmask demo --tour` prints the older tour of attention masks and MLM corruption."""

from __future__ import annotations

from pathlib import Path


def cmd_demo(args) -> int:
    if args.tour:
        from unmask.demo import tour

        tour()
        return 0
    from unmask.commands.pretrain import run_pretraining
    from unmask.demo import print_fill_mask

    try:
        result = run_pretraining(args)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print_fill_mask(Path(args.out) / "model")
    baseline = result.get("baseline")
    ev = result.get("eval")
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
