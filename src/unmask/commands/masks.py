"""`unmask masks show KIND ...`: print a mask the way textbooks draw it, optionally save a PNG."""

from __future__ import annotations

from unmask.commands import integer, non_negative_int, positive_int

KINDS = ("causal", "window", "global", "prefix", "block-sparse", "document")
# The kind-specific flags each kind reads, with their defaults. A flag given to a kind that
# does not read it is refused rather than silently ignored. causal --window W draws a
# sliding-window causal mask (each position sees itself and the W before it).
KIND_FLAGS = {
    "causal": {"window": None},
    "window": {"window": 1},
    "global": {"window": 1, "global_positions": [0]},
    "prefix": {"prefix": 2},
    "block-sparse": {"block": 2, "seed": 0},
    "document": {"lengths": None},
}
# Peak bytes per mask entry of Mask.render and print (Python lists of the grid and its cells,
# the text): the (n, n) mask itself is the smallest part. masks.MAX_MASK_BYTES bounds it.
RENDER_BYTES_PER_ENTRY = 24


def _kind_options(args) -> dict:
    """The kind-specific options of args.kind, defaults filled in; ValueError naming a flag
    that this kind does not read."""
    reads = KIND_FLAGS[args.kind]
    for name in sorted({n for flags in KIND_FLAGS.values() for n in flags} - set(reads)):
        if getattr(args, name) is not None:
            users = [k for k, flags in KIND_FLAGS.items() if name in flags]
            raise ValueError(f"--{name.replace('_', '-')} does not apply to {args.kind} masks "
                             f"(only to {', '.join(users)}); drop it")
    return {n: default if getattr(args, n) is None else getattr(args, n)
            for n, default in reads.items()}


def _mask_from_args(args) -> tuple[object, list[str] | None]:
    """Build the mask named on the command line. Returns (Mask, labels or None).

    Raises ValueError (the CLI prints it, exit code 2) on sizes that do not fit together.
    """
    from unmask import masks

    labels = args.tokens.split() if args.tokens else None
    if labels and args.length is not None and args.length != len(labels):
        raise ValueError(f"--length {args.length} but --tokens gives {len(labels)} tokens; "
                         "give one of them")
    n = len(labels) if labels else args.length
    if n is None:
        raise ValueError("give --length N or --tokens 'w1 w2 ...' (at least one position)")
    masks._room(f"printing {n} positions", (n, n), RENDER_BYTES_PER_ENTRY)
    kind, o = args.kind, _kind_options(args)
    if kind == "causal":
        mask = masks.causal(n)
        if o["window"] is not None:
            mask = mask & masks.window(n, left=o["window"], right=0)
    elif kind == "window":
        mask = masks.window(n, left=o["window"], right=o["window"])
    elif kind == "global":
        mask = (masks.window(n, left=o["window"], right=o["window"])
                | masks.global_tokens(n, o["global_positions"]))
    elif kind == "prefix":
        mask = masks.prefix_lm(n, o["prefix"])
    elif kind == "block-sparse":
        mask = masks.block_sparse(n, block_size=o["block"], window_blocks=3, global_blocks=1,
                                  random_blocks=1, seed=o["seed"])
    else:  # "document" (argparse restricts the choices)
        if not o["lengths"]:
            raise ValueError("document masks need --lengths, e.g. --lengths 3 2")
        if sum(o["lengths"]) != n:
            raise ValueError(f"--lengths sum to {sum(o['lengths'])} but the row has {n} "
                             "positions; make them add up")
        mask = masks.document_from_lengths(o["lengths"])
    if args.pad:
        if args.pad >= n:
            raise ValueError(f"--pad {args.pad} leaves no real token in {n} positions")
        import torch

        mask = mask & masks.padding(torch.arange(n)[None] < n - args.pad)  # (1, n), True = token
    return mask, labels


def cmd_masks_show(args) -> int:
    mask, labels = _mask_from_args(args)
    print(mask.render(labels=labels))
    if args.png:
        from unmask.viz import save_mask_png

        save_mask_png(mask, args.png, labels=labels)
        print(f"saved {args.png}")
    return 0


def register(sub) -> None:
    masks_cmd = sub.add_parser("masks", help="attention masks: print and draw them")
    masks_sub = masks_cmd.add_subparsers(dest="masks_command", required=True)
    show = masks_sub.add_parser("show",
                                help="print a mask as rows of 0 and -inf; --png saves a picture")
    show.add_argument("kind", choices=KINDS)
    show.add_argument("--length", "-n", type=positive_int, default=None,
                      help="number of positions")
    show.add_argument("--tokens", help="space-separated token labels (sets the length)")
    show.add_argument("--window", type=non_negative_int, default=None,
                      help="window and global: positions each side (default 1); causal: "
                      "positions back (default: all)")
    show.add_argument("--global-positions", type=integer(), nargs="+", default=None,
                      help="global: positions that see and are seen by all (default 0)")
    show.add_argument("--prefix", type=non_negative_int, default=None,
                      help="prefix-LM: bidirectional prefix length (default 2)")
    show.add_argument("--block", type=positive_int, default=None,
                      help="block-sparse: block size (default 2)")
    show.add_argument("--seed", type=non_negative_int, default=None,
                      help="block-sparse: seed of the random blocks (default 0)")
    show.add_argument("--lengths", type=non_negative_int, nargs="+",
                      help="document: lengths of the packed documents")
    show.add_argument("--pad", type=non_negative_int, default=0,
                      help="mark the last N positions as padding")
    show.add_argument("--png", help="also save the mask as a PNG heatmap")
    show.set_defaults(func=cmd_masks_show)
