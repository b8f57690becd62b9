"""`unmask serve`: the pipelines as an HTTP JSON API (see unmask.server)."""

from __future__ import annotations

import os

from unmask.commands import integer, real

TASK_FLAGS = ("fill-mask", "score", "embed", "similarity", "classify", "zero-shot", "ner",
              "answer")


def cmd_serve(args) -> int:
    from unmask.hardware import threads_from_env
    from unmask.server import (
        bound_native_caches,
        create_app,
        default_hosts,
        load_pipelines,
        serve,
        serve_workers,
    )

    bound_native_caches()  # before any model runs: they read the environment once
    per_task = {t: path for t in TASK_FLAGS if (path := getattr(args, t.replace("-", "_")))}
    load = {"batch_tokens": args.batch_tokens, "dtype": args.dtype, "quantize": args.quantize}
    limits = {"max_texts": args.max_texts, "max_chars": args.max_chars,
              "max_body_bytes": args.max_body_bytes, "max_batch": args.max_batch,
              "wait_ms": args.wait_ms, "max_cost": args.max_cost, "timeout_s": args.timeout,
              "max_pending": args.max_pending, "max_queues": args.max_queues,
              "large_share": args.large_share,
              "allowed_hosts": args.allowed_hosts or default_hosts(args.host)}
    if args.workers > 1:
        print(f"serving on http://{args.host}:{args.port} with {args.workers} worker processes "
              f"(docs at /docs)")
        serve_workers(args.workers, args.host, args.port, args.model, args.tasks, per_task,
                      load, limits, threads=getattr(args, "threads", None) or threads_from_env())
        return 0
    pipes = load_pipelines(args.model, args.tasks, per_task, **load)
    print(f"serving {', '.join(sorted(pipes))} on http://{args.host}:{args.port} "
          f"(docs at /docs)")
    serve(create_app(pipes, **limits), args.host, args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the pipelines as an HTTP JSON API")
    p.add_argument("--model", "-m", default=os.environ.get("UNMASK_MODEL"),
                   help="checkpoint serving every task it has a head for")
    p.add_argument("--tasks", nargs="+", choices=TASK_FLAGS, help="only these tasks of --model")
    for task in TASK_FLAGS:
        p.add_argument(f"--{task}", metavar="DIR", help=f"checkpoint for {task}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=integer(1, 65535), default=8000)
    p.add_argument("--allowed-hosts", nargs="+", metavar="NAME",
                   help="Host header names served, * for any (default: localhost, 127.0.0.1 "
                        "and ::1 when --host is a loopback address, else any)")
    p.add_argument("--workers", type=integer(1, 256), default=1,
                   help="processes, each with its own model and cores // N torch threads")
    p.add_argument("--max-texts", type=integer(1), default=64,
                   help="texts per request (else 413)")
    p.add_argument("--max-chars", type=integer(1), default=20000,
                   help="characters per text (else 413)")
    p.add_argument("--max-body-bytes", type=integer(1), default=1 << 20,
                   help="request body size, counted as it streams in (else 413)")
    p.add_argument("--max-cost", type=integer(1), default=1 << 19,
                   help="compute budget per request in token-passes: tokens x forward passes "
                        "(else 413)")
    p.add_argument("--timeout", type=real(0.001), default=60.0,
                   help="seconds for a request's answer (else 504, work dropped)")
    p.add_argument("--max-pending", type=integer(1), default=256,
                   help="requests in flight at once (else 503)")
    p.add_argument("--max-queues", type=integer(1), default=64,
                   help="micro-batching queues alive at once, one per task and option set "
                        "(beyond: run unmerged)")
    p.add_argument("--max-batch", type=integer(1), default=64,
                   help="texts merged into one model call")
    p.add_argument("--wait-ms", type=real(0, 60000), default=2.0,
                   help="how long a batch waits to fill")
    p.add_argument("--large-share", type=real(0, 1), default=0.5,
                   help="the model's time large requests get while small ones wait too (0: "
                        "small first, a large one may wait until its timeout)")
    p.add_argument("--batch-tokens", type=integer(1), default=2048,
                   help="padded tokens per forward pass; also how often requests take turns "
                        "(smaller: fairer, a little slower)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "int8"), default="auto")
    p.add_argument("--quantize", action="store_true")
    p.set_defaults(func=cmd_serve)
