"""`unmask masks show KIND ...`: print a mask the way textbooks draw it, optionally save a PNG."""

from __future__ import annotations

KINDS = ("causal", "window", "global", "prefix", "block-sparse", "document")


def _mask_from_args(args) -> tuple[object, list[str] | None]:
    """Build the mask named on the command line. Returns (Mask, labels or None)."""
    from unmask import masks

    labels = args.tokens.split() if args.tokens else None
    n = len(labels) if labels else args.length
    if n is None or n < 1:
        raise SystemExit("error: give --length N or --tokens 'w1 w2 ...' (at least one position)")
    kind = args.kind
    if kind == "causal":
        mask = masks.causal(n)
    elif kind == "window":
        mask = masks.window(n, left=args.window, right=args.window)
    elif kind == "global":
        mask = masks.window(n, left=args.window, right=args.window) | masks.global_tokens(n, args.global_positions)
    elif kind == "prefix":
        mask = masks.prefix_lm(n, args.prefix)
    elif kind == "block-sparse":
        mask = masks.block_sparse(n, block_size=args.block, window_blocks=3, global_blocks=1,
                                  random_blocks=1, seed=args.seed)
    else:  # "document" (argparse restricts the choices)
        if not args.lengths:
            raise SystemExit("error: document masks need --lengths, e.g. --lengths 3 2")
        if sum(args.lengths) != n:
            raise SystemExit(f"error: --lengths sum to {sum(args.lengths)} but the row has {n} "
                             "positions; make them add up")
        mask = masks.document_from_lengths(args.lengths)
    if args.pad:
        if args.pad >= n:
            raise SystemExit(f"error: --pad {args.pad} leaves no real token in {n} positions")
        import torch

        attention_mask = torch.ones(1, n, dtype=torch.long)
        attention_mask[:, n - args.pad:] = 0
        mask = mask & masks.padding(attention_mask)
    return mask, labels


def cmd_masks_show(args) -> int:
    try:
        mask, labels = _mask_from_args(args)
    except ValueError as e:  # a constructor refused the sizes: say so without a traceback
        raise SystemExit(f"error: {e}") from None
    print(mask.render(labels=labels))
    if args.png:
        from unmask.viz import save_mask_png

        save_mask_png(mask, args.png, labels=labels)
        print(f"saved {args.png}")
    return 0


def register(sub) -> None:
    masks_cmd = sub.add_parser("masks", help="attention masks: print and draw them")
    masks_sub = masks_cmd.add_subparsers(dest="masks_command", required=True)
    show = masks_sub.add_parser("show", help="print a mask as rows of 0 and -inf; --png saves a picture")
    show.add_argument("kind", choices=KINDS)
    show.add_argument("--length", "-n", type=int, default=None, help="number of positions")
    show.add_argument("--tokens", help="space-separated token labels (sets the length)")
    show.add_argument("--window", type=int, default=1, help="window: positions each side")
    show.add_argument("--global-positions", type=int, nargs="+", default=[0])
    show.add_argument("--prefix", type=int, default=2, help="prefix-LM: bidirectional prefix length")
    show.add_argument("--block", type=int, default=2, help="block-sparse: block size")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--lengths", type=int, nargs="+", help="document: lengths of the packed documents")
    show.add_argument("--pad", type=int, default=0, help="mark the last N positions as padding")
    show.add_argument("--png", help="also save the mask as a PNG heatmap")
    show.set_defaults(func=cmd_masks_show)
