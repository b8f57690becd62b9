"""`unmask fill|score|embed|similarity|classify|ner|answer|attention`: use a model from a shell.

Texts come from the arguments, else from --file (one per line), else from stdin (one per
line). Output is a readable table, or JSON with --json. Long work draws a progress bar on
stderr. Every command takes --model (a checkpoint directory or hub id; default $UNMASK_MODEL).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

from unmask.commands import add_source_arguments, positive_int


def _texts(args, at_least: int = 1) -> list[str]:
    """The input texts: the arguments, else --file, else stdin; one text per line.

    Every line is one input and gets one output row (embed -o writes row i for line i), so a
    blank line is refused with its number rather than dropped; text that is not UTF-8 is
    refused naming the file and line.
    """
    texts = list(args.texts or [])
    if not texts and args.file:
        with open(args.file, "rb") as f:
            texts = _lines(f, args.file)
    if not texts and not sys.stdin.isatty():
        stream = getattr(sys.stdin, "buffer", None)
        texts = _lines(stream, "stdin") if stream is not None else _lines(
            (line.encode("utf-8") for line in sys.stdin), "stdin")
    if len(texts) < at_least:
        raise SystemExit(f"error: give at least {at_least} text(s) as arguments, with --file, "
                         "or on stdin (one per line)")
    return texts


def _lines(raw, name: str) -> list[str]:
    """Decoded lines of a byte stream, one text each (a final newline ends the last line)."""
    out = []
    for number, line in enumerate(raw, 1):
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise SystemExit(f"error: {name} line {number} is not UTF-8 (byte "
                             f"0x{line[e.start]:02x} at byte {e.start + 1}); save it as UTF-8"
                             ) from None
        if not text.strip():
            raise SystemExit(f"error: {name} line {number} is blank; each line is one input "
                             "(and one output row): remove blank lines")
        out.append(text)
    return out


@contextmanager
def _pipeline(task: str, args):
    """The pipeline for task, with a progress bar while it runs; errors become messages."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from unmask.pipelines import pipeline

    if not args.model:
        raise SystemExit("error: say which model with --model DIR (or set UNMASK_MODEL)")
    console = Console(stderr=True)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        job = bar.add_task(task, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(job, completed=done, total=total)

        try:
            yield pipeline(task, args.model, batch_tokens=args.batch_tokens, dtype=args.dtype,
                           quantize=args.quantize, device=args.device, progress=progress,
                           revision=args.revision, allow_pickle=args.allow_pickle,
                           **getattr(args, "pipeline_options", {}))
        except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
            raise SystemExit(f"error: {err}") from None


def _print(args, result, table) -> int:
    """JSON with --json, else the rich table built by table()."""
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console

    Console().print(table())
    return 0


def _table(title: str, *columns: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


# --- commands ----------------------------------------------------------------------------------

def cmd_fill(args) -> int:
    texts = _texts(args)
    with _pipeline("fill-mask", args) as fill:
        out = fill(texts, top_k=args.top_k, targets=args.targets, joint=args.joint,
                   beam_size=args.beam_size)

    def table():
        t = _table("fill-mask", "text", "mask", "rank", "token", "score", "sequence")
        for text, res in zip(texts, out):
            if args.joint:
                for r, s in enumerate(res, 1):
                    t.add_row(text, "all", str(r), " ".join(s["token_strs"]),
                              f"PLL {s['pll']:.2f}", s["sequence"])
                continue
            per_mask = [res] if res and isinstance(res[0], dict) else res
            for m, props in enumerate(per_mask):
                for r, p in enumerate(props, 1):
                    t.add_row(text if m == 0 and r == 1 else "", str(m), str(r), p["token_str"],
                              f"{p['score']:.4f}", p["sequence"])
        return t

    return _print(args, out, table)


def cmd_score(args) -> int:
    texts = _texts(args)
    with _pipeline("score", args) as score:
        out = score(texts)

    def table():
        t = _table("pseudo-log-likelihood", "text", "tokens", "PLL", "pseudo-perplexity")
        for r in out:
            t.add_row(r["sequence"], str(len(r["tokens"])), f"{r['pll']:.3f}", f"{r['pppl']:.2f}")
        return t

    return _print(args, out, table)


def cmd_embed(args) -> int:
    texts = _texts(args)
    with _pipeline("embed", args) as embed:
        vectors = embed(texts)
    if args.output:
        import numpy as np

        np.save(args.output, vectors.numpy())
        print(f"saved {tuple(vectors.shape)} float32 array to {args.output}", file=sys.stderr)
    out = [{"text": t, "embedding": v} for t, v in zip(texts, vectors.tolist())]

    def table():
        t = _table(f"embeddings ({vectors.shape[1]} dimensions)", "text", "norm", "first values")
        for text, v in zip(texts, vectors):
            t.add_row(text, f"{v.norm():.4f}", " ".join(f"{x:+.3f}" for x in v[:6].tolist()) + " ...")
        return t

    return _print(args, out, table)


def cmd_similarity(args) -> int:
    texts = _texts(args, at_least=2)
    with _pipeline("similarity", args) as similarity:
        sims = similarity(texts)
    out = {"texts": texts, "similarity": sims.tolist()}

    def table():
        t = _table("cosine similarity", "", *[str(i) for i in range(len(texts))])
        for i, (text, row) in enumerate(zip(texts, sims.tolist())):
            t.add_row(f"{i}: {text}", *[f"{x:.3f}" for x in row])
        return t

    return _print(args, out, table)


def cmd_classify(args) -> int:
    texts = _texts(args)
    if args.labels:  # zero-shot through an NLI checkpoint
        with _pipeline("zero-shot", args) as zero_shot:
            out = zero_shot(texts, candidate_labels=args.labels,
                            hypothesis_template=args.template, multi_label=args.multi_label)
        rows = [(r["sequence"], list(zip(r["labels"], r["scores"]))[: args.top_k]) for r in out]
    else:
        with _pipeline("classify", args) as classify:
            out = classify(texts, top_k=args.top_k)
        rows = [(text, [(x["label"], x["score"]) for x in r]) for text, r in zip(texts, out)]

    def table():
        t = _table("classification", "text", "label", "score")
        for text, labels in rows:
            for i, (label, score) in enumerate(labels):
                t.add_row(text if i == 0 else "", label, f"{score:.4f}")
        return t

    return _print(args, out, table)


def cmd_ner(args) -> int:
    texts = _texts(args)
    with _pipeline("ner", args) as ner:
        out = ner(texts, aggregation=args.aggregation)

    def table():
        t = _table("entities", "text", "entity", "word", "start", "end", "score")
        for text, ents in zip(texts, out):
            for i, e in enumerate(ents):
                t.add_row(text if i == 0 else "", e.get("entity_group", e.get("entity")),
                          e["word"], str(e["start"]), str(e["end"]), f"{e['score']:.4f}")
            if not ents:
                t.add_row(text, "(none)", "", "", "", "")
        return t

    return _print(args, out, table)


def cmd_answer(args) -> int:
    contexts = _texts(args)
    with _pipeline("answer", args) as answer:
        out = answer([args.question] * len(contexts), contexts, top_k=args.top_k)
    out = [o if isinstance(o, list) else [o] for o in out]

    def table():
        t = _table(f"answers to: {args.question}", "context", "answer", "score", "start", "end")
        for context, answers in zip(contexts, out):
            for i, a in enumerate(answers):
                t.add_row(context[:80] if i == 0 else "", a["answer"], f"{a['score']:.4f}",
                          str(a["start"]), str(a["end"]))
        return t

    return _print(args, out, table)


def cmd_attention(args) -> int:
    import torch

    from unmask.checkpoints import load, resolve
    from unmask.tokenizer import Tokenizer
    from unmask.viz import save_attention_png

    text = " ".join(_texts(args))
    try:
        directory = resolve(args.model, args.revision, args.allow_pickle)
        encoder = load(directory, task="encoder", allow_pickle=args.allow_pickle)
        tokenizer = Tokenizer.from_pretrained(directory)
        enc = tokenizer.encode_batch([text])
        with torch.inference_mode():
            out = encoder(enc.input_ids, enc.attention_mask, enc.token_type_ids,
                          output_attentions=True)
        labels = [tokenizer.id_to_token(i) for i in enc.input_ids[0].tolist()]
        path = save_attention_png(out.attentions, args.png, labels, layer=args.layer,
                                  head=args.head)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    cfg = encoder.config
    print(f"saved {path}: {len(labels)} tokens, "
          f"{cfg.num_layers if args.layer is None else 1} layer(s) x "
          f"{cfg.num_heads if args.head is None else 1} head(s)")
    return 0


# --- argument parsing --------------------------------------------------------------------------

def _common(p, texts_help: str = "texts (else --file, else stdin, one per line)") -> None:
    p.add_argument("texts", nargs="*", help=texts_help)
    p.add_argument("--model", "-m", default=os.environ.get("UNMASK_MODEL"),
                   help="checkpoint directory or hub id (default $UNMASK_MODEL)")
    add_source_arguments(p)
    p.add_argument("--file", "-f", help="read texts from this file, one per line")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-tokens", type=positive_int, default=8192, help="padded tokens per batch")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "int8"), default="auto",
                   help="auto (default): float32 on CPUs (exact), bfloat16 on GPUs that have "
                        "it; bfloat16: fast only where the CPU has AVX-512 BF16 / AMX; int8: "
                        "CPU, faster, approximate")
    p.add_argument("--quantize", action="store_true", help="the same as --dtype int8")
    p.add_argument("--device", default="cpu")


def register(sub) -> None:
    p = sub.add_parser("fill", help="predict [MASK] tokens")
    _common(p)
    p.add_argument("--top-k", "-k", type=positive_int, default=5)
    p.add_argument("--targets", nargs="+", help="only score these words")
    p.add_argument("--joint", action="store_true",
                   help="fill all masks together (beam search), whole sentences with their PLL")
    p.add_argument("--beam-size", type=positive_int, default=5)
    p.set_defaults(func=cmd_fill)

    p = sub.add_parser("score", help="pseudo-log-likelihood of sentences under an MLM")
    _common(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("embed", help="sentence embeddings")
    _common(p)
    p.add_argument("--output", "-o", help="also save the (N, H) float32 array as .npy")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("similarity", help="cosine similarity between texts (a matrix)")
    _common(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("classify", help="classify texts; --labels for zero-shot via NLI")
    _common(p)
    p.add_argument("--top-k", "-k", type=positive_int, default=1)
    p.add_argument("--labels", nargs="+", help="zero-shot: candidate labels (NLI checkpoint)")
    p.add_argument("--template", default="This example is {}.", help="zero-shot hypothesis")
    p.add_argument("--multi-label", action="store_true", help="zero-shot: labels independent")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("ner", help="named entities with character spans")
    _common(p)
    p.add_argument("--aggregation", "--aggregation-strategy", "-a", default="simple",
                   choices=("none", "simple", "first", "average", "max"),
                   help="how tokens become entities, as transformers' aggregation_strategy")
    p.set_defaults(func=cmd_ner)

    p = sub.add_parser("answer", help="extractive question answering over contexts")
    _common(p, "contexts (else --file, else stdin, one per line)")
    p.add_argument("--question", "-q", required=True)
    p.add_argument("--top-k", "-k", type=positive_int, default=1)
    p.set_defaults(func=cmd_answer)

    p = sub.add_parser("attention", help="save a picture of attention weights, per layer/head")
    p.add_argument("texts", nargs="*", help="the sentence (else --file or stdin)")
    p.add_argument("--model", "-m", default=os.environ.get("UNMASK_MODEL"),
                   help="checkpoint directory or hub id (default $UNMASK_MODEL)")
    add_source_arguments(p)
    p.add_argument("--file", "-f")
    p.add_argument("--layer", type=int, help="only this layer (default: all)")
    p.add_argument("--head", type=int, help="only this head (default: all)")
    p.add_argument("--png", default="attention.png", help="where to save (default %(default)s)")
    p.set_defaults(func=cmd_attention)
