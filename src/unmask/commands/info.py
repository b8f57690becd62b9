"""`unmask info MODEL` and `unmask info --table`: parameters and memory of a model.

    unmask info bert-base-uncased                 # a hub id, a checkpoint directory, a config.json
    unmask info DIR --batch 16 --length 256 --train
    unmask info --table                           # DistilBERT ... XLM-R-XL from their configs
    unmask info DIR --json
"""

from __future__ import annotations

import json

from unmask.commands import add_source_arguments, positive_int


def _row(label: str, *cells: str) -> str:
    return f"  {label:<22}" + "".join(f"{c:>16}" for c in cells)


def _size(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _print_model(d: dict) -> None:
    from unmask.info import mib

    cfg = d["config"]
    print(f"model: {d['model']}")
    dims = ", ".join(f"{k} {cfg[k]}" for k in ("num_layers", "hidden_size", "num_heads",
                                                 "intermediate_size", "vocab_size",
                                                 "max_position_embeddings") if k in cfg)
    print(f"architecture: {d['architecture']} ({d['family'] or 'unmask'}): {dims}")
    print("parameters")
    for part, n in d["parameters"].items():
        print(_row(part, f"{n:,}", f"{n / 1e6:,.1f}M"))
    w = d["weights_bytes"]
    print("weight memory (computed = parameters x bytes; measured = the loaded model's "
          "tensor bytes)")
    print(_row("dtype", "computed", "measured", "measured MiB"))
    for dtype, n in w["computed"].items():
        got = (w["measured"] or {}).get(dtype)
        print(_row(dtype, _size(n), _size(got) if got is not None else "-",
                   f"{mib(got):,.1f}" if got is not None else "-"))
    if w["measured"]:
        print("  (int8: dynamic quantisation of the encoder's linear layers, as the pipelines "
              "run it; embeddings stay fp32)")
    t = d["training_bytes"]
    print(f"training, fp32 AdamW (weights + gradients + 2 moments, 16 B/param): {_size(t)} "
          f"({mib(t):,.0f} MiB) before activations")
    a = d["activations_bytes"]
    if a:
        print(f"activations at batch {a['batch']} x length {a['length']}, fp32 (peak CPU "
              "allocations above the start, torch.profiler profile_memory):")
        print(_row("forward (inference)", _size(a["forward"])))
        if "forward_backward" in a:
            print(_row("forward + backward", _size(a["forward_backward"])))
            print(_row("  of which gradients", _size(a["gradients"])))


def _print_table(rows: list[dict]) -> None:
    print(_row("model", "parameters", "fp32", "bf16/fp16", "int8", "train fp32"))
    for r in rows:
        m = r["memory_mib"]
        print(_row(r["name"], f"{r['params'] / 1e6:,.1f}M", f"{m['fp32']:,.0f} MiB",
                   f"{m['bf16']:,.0f} MiB", f"{m['int8']:,.0f} MiB",
                   f"{r['train_mib']:,.0f} MiB"))
    print("parameters: the base model (embeddings + encoder + pooler, as AutoModel builds it); "
          "memory = parameters x bytes, MiB = 2^20 bytes; train = weights + gradients + AdamW")
    for r in rows:
        for note in r["notes"]:
            print(f"  {r['name']}: {note}")


def cmd_info(args) -> int:
    from unmask import info

    if args.table:
        result, show = info.table(), _print_table
    elif not args.model:
        raise SystemExit("error: give a MODEL (directory, hub id or config.json), or --table")
    else:
        result = info.describe(args.model, batch=args.batch, length=args.length,
                               train=args.train, revision=args.revision,
                               allow_pickle=args.allow_pickle)
        show = _print_model
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="parameters and memory of a model (or --table of known ones)")
    p.add_argument("model", nargs="?", help="checkpoint directory, hub id or config.json")
    p.add_argument("--table", action="store_true",
                   help="DistilBERT, BERT-base/large, RoBERTa-base, DeBERTa-v3-large, XLM-R-XL "
                        "from their configs")
    p.add_argument("--batch", type=positive_int, default=8,
                   help="activation memory for this batch size")
    p.add_argument("--length", type=positive_int, default=128, help="... and this sequence length")
    p.add_argument("--train", action="store_true", help="also measure forward + backward")
    add_source_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
