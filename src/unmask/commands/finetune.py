"""`unmask finetune TASK` and `unmask evaluate TASK`: train on labelled files, score a model.

    unmask finetune classify   --model DIR --train train.tsv  --dev dev.tsv  --out OUT
    unmask finetune ner        --model DIR --train train.conll --dev dev.conll --out OUT
    unmask finetune qa         --model DIR --train train.json --dev dev.json --out OUT
    unmask finetune similarity --model DIR --train train.csv  --dev dev.csv  --out OUT
    unmask evaluate classify   --model OUT/hf --data dev.tsv

The best model is saved to OUT/model and OUT/hf (the Hugging Face layout, with label names
and tokenizer files: transformers and unmask's pipelines load it); OUT/results.json holds the
dev metrics and the training history, OUT/metrics.jsonl and OUT/loss.png the training curve.
The run flags (--steps, --minutes, --epochs, --warmup, --dtype, --accumulate, --resume, ...)
are those of `unmask pretrain`. Bad data stops with the file and line at fault.
"""

from __future__ import annotations

import argparse
import json

from unmask.commands import add_source_arguments, non_negative_int, positive_int, real

# Per task: (learning rate, epochs, max_length). BERT's recipe for classification and NER;
# QA windows are longer; sentence-transformers' 2e-5 for similarity.
DEFAULTS = {
    "classify": (5e-5, 3.0, 128),
    "ner": (5e-5, 3.0, 128),
    "qa": (5e-5, 2.0, 384),
    "similarity": (2e-5, 4.0, 128),
}
HELP = {
    "classify": "sentence (pair) classification, or regression on scores (TSV/CSV/JSONL)",
    "ner": "token classification from CoNLL BIO files (entity F1, as seqeval)",
    "qa": "extractive QA on SQuAD JSON (exact match and F1, official script)",
    "similarity": "sentence-pair similarity with a cosine loss (Spearman); CSV/TSV/JSONL",
}


def _task(args):
    from unmask.tasks import TASKS

    # The Task's options: the flags of every task, then those of one task (see _common).
    names = ("max_length", "batch_size", "batch_tokens", "revision", "allow_pickle",
             "regression", "stride", "max_score")
    kwargs = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    task = TASKS[args.task](args.model, **kwargs)
    # Before any file is read: rows must hold some text besides the tokenizer's specials
    # (a QA row holds a question and a context; similarity and NER rows hold one text).
    pair = args.task == "qa"
    specials = task.tokenizer.backend.num_special_tokens_to_add(pair)
    if args.max_length <= specials:
        raise ValueError(f"--max-length {args.max_length} leaves no room for text: the "
                         f"tokenizer of {args.model} adds {specials} special tokens to each "
                         f"{'question-context pair' if pair else 'text'}; give --max-length "
                         f"> {specials}")
    return task


def cmd_finetune(args) -> int:
    from unmask.tasks import finetune
    from unmask.train.distributed import cleanup, setup
    from unmask.train.settings import from_args

    settings = from_args(args)
    d = setup(settings.device)
    task = _task(args)
    summary = finetune(task, args.train, args.dev, args.out, settings, max_train=args.max_train,
                       group_by_length=not args.random_batches)
    if d.is_main:
        best = summary["best"]
        if best is None:
            print(f"no evaluation gave a finite dev {summary['metric']}; no model saved")
            return 1
        print(f"best dev {summary['metric']}: {best['metric']:.4f} (step {best['step']} of "
              f"{summary['steps']}; {summary['stopped']})")
        print(json.dumps({k: v for k, v in best.items() if k != "metric"}))
        print(f"saved: {args.out}/model and {args.out}/hf; history in {args.out}/results.json")
    cleanup(d)
    return 0


def cmd_evaluate(args) -> int:
    import time

    from unmask.checkpoints import load

    task = _task(args)
    if args.task == "similarity":  # any encoder scores similarity (zero-shot)
        model = task.load()
    else:  # the other tasks need their trained head
        model = load(task.model_path, allow_pickle=args.allow_pickle)
        if getattr(model, "task", "") != task.model_task:
            raise ValueError(f"{args.model} holds a {getattr(model, 'task', 'bare encoder')} "
                             f"model, not a fine-tuned {args.task} model: run `unmask finetune "
                             f"{args.task}` first")
        task.labels_from(model)
    examples = task.read(args.data)
    task.check_labels(examples, args.data)
    t0 = time.perf_counter()
    metrics = task.evaluate(model, examples)
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(metrics, indent=2))
    return 0


def _common(p: argparse.ArgumentParser, task: str) -> None:
    p.add_argument("--model", required=True,
                   help="checkpoint directory (Hugging Face or unmask) or hub id")
    add_source_arguments(p)
    p.add_argument("--max-length", type=positive_int, default=DEFAULTS[task][2],
                   help="tokens per row, specials included (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="rows per batch (default 32)")
    p.add_argument("--batch-tokens", type=positive_int, default=8192,
                   help="padded tokens per batch at most (default 8192)")
    if task == "classify":
        p.add_argument("--regression", action="store_true", default=None,
                       help="labels are scores (default: detected from the training labels)")
    if task == "qa":
        p.add_argument("--stride", type=non_negative_int, default=128,
                       help="tokens shared by overlapping context windows (default 128)")
    if task == "similarity":
        p.add_argument("--max-score", type=real(0, low_open=True), default=5.0,
                       help="top of the gold score scale (default 5, as STS-B)")


def register(sub) -> None:
    from unmask.train.settings import FINETUNING, add_arguments

    ft = sub.add_parser("finetune", help="fine-tune a model on labelled data; saves the best")
    ft_sub = ft.add_subparsers(dest="task", required=True, metavar="TASK")
    ev = sub.add_parser("evaluate", help="score a model on labelled data (the task's metric)")
    ev_sub = ev.add_subparsers(dest="task", required=True, metavar="TASK")
    for task, (lr, epochs, _) in DEFAULTS.items():
        p = ft_sub.add_parser(task, help=HELP[task])
        _common(p, task)
        p.add_argument("--train", required=True, help="training file")
        p.add_argument("--dev", required=True, help="dev file: early stopping and best model")
        p.add_argument("--max-train", type=non_negative_int, default=0,
                       help="use only the first N training examples (0 = all)")
        p.add_argument("--random-batches", action="store_true",
                       help="batches of random rows (as the transformers Trainer) instead of "
                            "rows of similar length (less padding, faster)")
        add_arguments(p, **{**FINETUNING, "lr": lr, "epochs": epochs, "out": None})
        p.set_defaults(func=cmd_finetune)
        e = ev_sub.add_parser(task, help=HELP[task])
        _common(e, task)
        e.add_argument("--data", required=True, help="labelled file to score")
        e.set_defaults(func=cmd_evaluate)
