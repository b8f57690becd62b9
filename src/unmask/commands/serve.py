"""`unmask serve`: the pipelines as an HTTP JSON API (see unmask.serve)."""

from __future__ import annotations

import os

TASK_FLAGS = ("fill-mask", "score", "embed", "similarity", "classify", "zero-shot", "ner",
              "answer")


def cmd_serve(args) -> int:
    from unmask.serve import create_app, load_pipelines, serve

    per_task = {t: getattr(args, t.replace("-", "_")) for t in TASK_FLAGS
                if getattr(args, t.replace("-", "_"))}
    try:
        pipes = load_pipelines(args.model, args.tasks, per_task, batch_tokens=args.batch_tokens,
                               dtype=args.dtype, quantize=args.quantize)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    print(f"serving {', '.join(sorted(pipes))} on http://{args.host}:{args.port} "
          f"(docs at /docs)")
    app = create_app(pipes, max_texts=args.max_texts, max_chars=args.max_chars,
                     max_batch=args.max_batch, wait_ms=args.wait_ms)
    serve(app, args.host, args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the pipelines as an HTTP JSON API")
    p.add_argument("--model", "-m", default=os.environ.get("UNMASK_MODEL"),
                   help="checkpoint serving every task it has a head for")
    p.add_argument("--tasks", nargs="+", choices=TASK_FLAGS, help="only these tasks of --model")
    for task in TASK_FLAGS:
        p.add_argument(f"--{task}", metavar="DIR", help=f"checkpoint for {task}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-texts", type=int, default=64, help="texts per request (else 413)")
    p.add_argument("--max-chars", type=int, default=20000, help="characters per text (else 413)")
    p.add_argument("--max-batch", type=int, default=64, help="texts merged into one model call")
    p.add_argument("--wait-ms", type=float, default=2.0, help="how long a batch waits to fill")
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--quantize", action="store_true")
    p.set_defaults(func=cmd_serve)
