"""`unmask glue`: fine-tune and score a model on every GLUE task in a folder.

    unmask glue --model DIR --data glue_data --out runs/glue
    unmask glue --model DIR --data glue --out runs/glue --tasks cola,rte --seeds 3 \\
        --minutes-per-task 10 --set rte.lr=3e-5,cola.epochs=5

Prints the GLUE row (dev scores x100, mean±std over seeds) and writes OUT/glue.md,
OUT/glue.json, OUT/<task>/seed<k>/metrics.json and the GLUE server's OUT/submission.zip.
Run it again after an interruption: finished tasks are kept.
"""

from __future__ import annotations

from unmask.commands import add_source_arguments, non_negative_int, positive_int, real


def cmd_glue(args) -> int:
    from unmask.checkpoints import resolve
    from unmask.tasks.glue import TASKS
    from unmask.tasks.glue_run import parse_overrides, run_glue

    tasks = None
    if args.tasks:
        tasks = [t.strip().lower().replace("-", "") for t in args.tasks.split(",") if t.strip()]
    settings = parse_overrides(args.set or "", tuple(TASKS))
    if args.epochs is not None:
        settings = {name: {"epochs": args.epochs, **s} for name, s in settings.items()}
    model = resolve(args.model, args.revision, args.allow_pickle)
    result = run_glue(model, args.data, args.out, tasks=tasks, seeds=args.seeds,
                      minutes_per_task=args.minutes_per_task or 0.0, settings=settings,
                      max_train=args.max_train, device=args.device, progress=not args.quiet,
                      keep_models=args.keep_models, name=args.name,
                      allow_pickle=args.allow_pickle)
    print(result["table"])
    print(f"\nsubmission: {args.out}/submission.zip ({len(result['submission'])} files"
          + (f"; a full GLUE submission also needs {', '.join(result['missing'])}"
             if result["missing"] else "") + ")")
    print(f"metrics: {args.out}/<task>/seed<k>/metrics.json, all in {args.out}/glue.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("glue", help="fine-tune and score on the GLUE tasks; table and "
                       "submission.zip")
    p.add_argument("--model", required=True,
                   help="checkpoint directory (Hugging Face or unmask) or hub id")
    add_source_arguments(p)
    p.add_argument("--data", required=True,
                   help="glue_data/ (TSV, as GLUE's download script writes it) or the hub's "
                        "glue folder (one parquet folder per config)")
    p.add_argument("--out", required=True, help="output directory (a rerun resumes it)")
    p.add_argument("--tasks", help="comma-separated, e.g. cola,sst2,mrpc,stsb,qqp,mnli,qnli,rte,"
                                   "wnli (default: every task with train and dev files)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes-per-task", type=real(0, low_open=True),
                        help="training time per task and seed; the schedule is planned to fit "
                             "it (at most the recipe's 3 epochs)")
    budget.add_argument("--epochs", type=real(0, low_open=True),
                        help="epochs for every task (default 3)")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="seeds 0..N-1 per task (default 1)")
    p.add_argument("--set", help="recipe overrides: task.key=value or key=value for all, "
                                 "comma-separated (e.g. rte.lr=3e-5,cola.epochs=5,batch_size=16;"
                                 " keys: lr, epochs, batch_size, warmup_ratio, max_length, ...)")
    p.add_argument("--max-train", type=non_negative_int, default=0,
                   help="train on a random N examples of each task (0 = all); for quick runs")
    p.add_argument("--keep-models", action="store_true",
                   help="keep each task's fine-tuned model (default: only metrics and "
                        "predictions stay)")
    p.add_argument("--name", help="the model's name in the table (default: its folder's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_glue)
