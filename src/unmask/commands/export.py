"""`unmask export onnx MODEL --task embed|classify|ner|fill-mask|qa --out DIR [--int8]`."""

from __future__ import annotations

import sys

from unmask.commands import integer


def cmd_onnx(args) -> int:
    from unmask.export import export_onnx

    out = export_onnx(args.model, args.task, args.out, int8=args.int8, opset=args.opset)
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.suffix == ".onnx"))
    print(f"exported {args.task} to {out}: {files} (inputs input_ids, attention_mask, "
          "token_type_ids; dynamic batch and length)", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model for another engine (ONNX)")
    engines = p.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    q = engines.add_parser("onnx", help="an ONNX graph for ONNX Runtime (pooling included)")
    q.add_argument("model", help="checkpoint directory or hub id")
    q.add_argument("--task", required=True,
                   choices=("embed", "classify", "ner", "fill-mask", "qa"))
    q.add_argument("--out", "-o", required=True, help="output directory")
    q.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx (ONNX Runtime dynamic int8; needs onnxruntime)")
    q.add_argument("--opset", type=integer(7, 30), default=17,
                   help="ONNX opset (default %(default)s)")
    q.set_defaults(func=cmd_onnx)
