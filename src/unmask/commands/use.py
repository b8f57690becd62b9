"""`unmask fill|score|embed|similarity|classify|ner|answer|attention`: use a model from a shell.

Texts come from the arguments, else from --file (one per line), else from stdin (one per
line). Output is a readable table, or JSON with --json. Long work draws a progress bar on
stderr. Every command takes --model (a checkpoint directory or hub id; default $UNMASK_MODEL).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
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
    if not texts and not sys.stdin.isatty():  # a text stream without .buffer: as its bytes
        stream = getattr(sys.stdin, "buffer", None) or (line.encode() for line in sys.stdin)
        texts = _lines(stream, "stdin")
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
        try:
            yield pipeline(task, args.model, batch_tokens=args.batch_tokens, dtype=args.dtype,
                           quantize=args.quantize, device=args.device, revision=args.revision,
                           allow_pickle=args.allow_pickle,
                           progress=lambda done, rows: bar.update(job, completed=done, total=rows))
        except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
            raise SystemExit(f"error: {err}") from None


def _print(args, result, title: str, columns: tuple[str, ...], rows: Iterable) -> int:
    """JSON with --json, else a rich table of rows (string tuples, read only for the table)."""
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return 0


# --- commands ----------------------------------------------------------------------------------

def cmd_fill(args) -> int:
    texts = _texts(args)
    with _pipeline("fill-mask", args) as fill:
        out = fill(texts, top_k=args.top_k, targets=args.targets, joint=args.joint,
                   beam_size=args.beam_size)

    def rows():
        for text, res in zip(texts, out):
            if args.joint:
                for r, s in enumerate(res, 1):
                    yield (text, "all", str(r), " ".join(s["token_strs"]), f"PLL {s['pll']:.2f}",
                           s["sequence"])
                continue
            per_mask = [res] if res and isinstance(res[0], dict) else res
            for m, props in enumerate(per_mask):
                for r, p in enumerate(props, 1):
                    yield (text if m == 0 and r == 1 else "", str(m), str(r), p["token_str"],
                           f"{p['score']:.4f}", p["sequence"])

    return _print(args, out, "fill-mask",
                  ("text", "mask", "rank", "token", "score", "sequence"), rows())


def cmd_score(args) -> int:
    texts = _texts(args)
    with _pipeline("score", args) as score:
        out = score(texts)

    rows = ((r["sequence"], str(len(r["tokens"])), f"{r['pll']:.3f}", f"{r['pppl']:.2f}")
            for r in out)
    return _print(args, out, "pseudo-log-likelihood",
                  ("text", "tokens", "PLL", "pseudo-perplexity"), rows)


def cmd_embed(args) -> int:
    texts = _texts(args)
    with _pipeline("embed", args) as embed:
        vectors = embed(texts)
    if args.output:
        import numpy as np

        np.save(args.output, vectors.numpy())
        print(f"saved {tuple(vectors.shape)} float32 array to {args.output}", file=sys.stderr)
    out = [{"text": t, "embedding": v} for t, v in zip(texts, vectors.tolist())]

    rows = ((text, f"{v.norm():.4f}", " ".join(f"{x:+.3f}" for x in v[:6].tolist()) + " ...")
            for text, v in zip(texts, vectors))
    return _print(args, out, f"embeddings ({vectors.shape[1]} dimensions)",
                  ("text", "norm", "first values"), rows)


def cmd_similarity(args) -> int:
    texts = _texts(args, at_least=2)
    with _pipeline("similarity", args) as similarity:
        sims = similarity(texts)
    out = {"texts": texts, "similarity": sims.tolist()}

    rows = ((f"{i}: {text}", *[f"{x:.3f}" for x in row])
            for i, (text, row) in enumerate(zip(texts, sims.tolist())))
    return _print(args, out, "cosine similarity", ("", *[str(i) for i in range(len(texts))]),
                  rows)


def cmd_classify(args) -> int:
    texts = _texts(args)
    if args.labels:  # zero-shot through an NLI checkpoint
        with _pipeline("zero-shot", args) as zero_shot:
            out = zero_shot(texts, candidate_labels=args.labels,
                            hypothesis_template=args.template, multi_label=args.multi_label)
        ranked = [(r["sequence"], list(zip(r["labels"], r["scores"]))[: args.top_k]) for r in out]
    else:
        with _pipeline("classify", args) as classify:
            out = classify(texts, top_k=args.top_k)
        ranked = [(text, [(x["label"], x["score"]) for x in r]) for text, r in zip(texts, out)]

    rows = ((text if i == 0 else "", label, f"{score:.4f}")
            for text, labels in ranked for i, (label, score) in enumerate(labels))
    return _print(args, out, "classification", ("text", "label", "score"), rows)


def cmd_ner(args) -> int:
    texts = _texts(args)
    with _pipeline("ner", args) as ner:
        out = ner(texts, aggregation=args.aggregation)

    def rows():
        for text, ents in zip(texts, out):
            for i, e in enumerate(ents):
                yield (text if i == 0 else "", e.get("entity_group", e.get("entity")),
                       e["word"], str(e["start"]), str(e["end"]), f"{e['score']:.4f}")
            if not ents:
                yield (text, "(none)", "", "", "", "")

    return _print(args, out, "entities", ("text", "entity", "word", "start", "end", "score"),
                  rows())


def cmd_answer(args) -> int:
    contexts = _texts(args)
    with _pipeline("answer", args) as answer:
        out = answer([args.question] * len(contexts), contexts, top_k=args.top_k)
    out = [o if isinstance(o, list) else [o] for o in out]

    rows = ((context[:80] if i == 0 else "", a["answer"], f"{a['score']:.4f}", str(a["start"]),
             str(a["end"]))
            for context, answers in zip(contexts, out) for i, a in enumerate(answers))
    return _print(args, out, f"answers to: {args.question}",
                  ("context", "answer", "score", "start", "end"), rows)


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

def _command(sub, name: str, summary: str, func, pipeline: bool = True,
             texts_help: str = "texts (else --file, else stdin, one per line)"):
    """The parser of one command: its texts and --model, and a pipeline's options."""
    p = sub.add_parser(name, help=summary)
    p.set_defaults(func=func)
    p.add_argument("texts", nargs="*", help=texts_help)
    p.add_argument("--model", "-m", default=os.environ.get("UNMASK_MODEL"),
                   help="checkpoint directory or hub id (default $UNMASK_MODEL)")
    add_source_arguments(p)
    p.add_argument("--file", "-f", help="read texts from this file, one per line")
    if not pipeline:
        return p
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--batch-tokens", type=positive_int, default=8192,
                   help="padded tokens per batch")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "int8"), default="auto",
                   help="auto (default): float32 on CPUs (exact), bfloat16 on GPUs that have "
                        "it; bfloat16: fast only where the CPU has AVX-512 BF16 / AMX; int8: "
                        "CPU, faster, approximate")
    p.add_argument("--quantize", action="store_true", help="the same as --dtype int8")
    p.add_argument("--device", default="cpu")
    return p


def register(sub) -> None:
    p = _command(sub, "fill", "predict [MASK] tokens", cmd_fill)
    p.add_argument("--top-k", "-k", type=positive_int, default=5)
    p.add_argument("--targets", nargs="+", help="only score these words")
    p.add_argument("--joint", action="store_true",
                   help="fill all masks together (beam search), whole sentences with their PLL")
    p.add_argument("--beam-size", type=positive_int, default=5)

    _command(sub, "score", "pseudo-log-likelihood of sentences under an MLM", cmd_score)

    p = _command(sub, "embed", "sentence embeddings", cmd_embed)
    p.add_argument("--output", "-o", help="also save the (N, H) float32 array as .npy")

    _command(sub, "similarity", "cosine similarity between texts (a matrix)", cmd_similarity)

    p = _command(sub, "classify", "classify texts; --labels for zero-shot via NLI", cmd_classify)
    p.add_argument("--top-k", "-k", type=positive_int, default=1)
    p.add_argument("--labels", nargs="+", help="zero-shot: candidate labels (NLI checkpoint)")
    p.add_argument("--template", default="This example is {}.", help="zero-shot hypothesis")
    p.add_argument("--multi-label", action="store_true", help="zero-shot: labels independent")

    p = _command(sub, "ner", "named entities with character spans", cmd_ner)
    p.add_argument("--aggregation", "--aggregation-strategy", "-a", default="simple",
                   choices=("none", "simple", "first", "average", "max"),
                   help="how tokens become entities, as transformers' aggregation_strategy")

    p = _command(sub, "answer", "extractive question answering over contexts", cmd_answer,
                 texts_help="contexts (else --file, else stdin, one per line)")
    p.add_argument("--question", "-q", required=True)
    p.add_argument("--top-k", "-k", type=positive_int, default=1)

    p = _command(sub, "attention", "save a picture of attention weights, per layer/head",
                 cmd_attention, pipeline=False, texts_help="the sentence (else --file or stdin)")
    p.add_argument("--layer", type=int, help="only this layer (default: all)")
    p.add_argument("--head", type=int, help="only this head (default: all)")
    p.add_argument("--png", default="attention.png", help="where to save (default %(default)s)")
