"""`unmask prepare` (raw text -> token shards) and `unmask pretrain` (shards -> a model).

    unmask prepare books/ --out shards/ --train-tokenizer --vocab-size 16000
    unmask pretrain --data shards/ --out run/ --preset mini --minutes 30
    unmask pretrain --corpus books/ --out run/ --steps 2000        # prepares run/data first
    unmask pretrain --out run/ --steps 2000 --resume               # after a kill, continue
    torchrun --nproc-per-node 2 -m unmask.cli pretrain --data shards/ --out run/ --steps 2000
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path

from unmask.commands import fraction_or_count, integer, non_negative_int, positive_int, real

DEFAULT_VOCAB = 8000
# A trained vocabulary holds the five special tokens and at least one more; token ids are
# stored as uint16 or uint32 (unmask.data.token_dtype).
vocab_size = integer(6, 2**32)
seq_len = integer(2)  # [CLS] and [SEP] (PretrainRecipe's bound)


def prepare_corpus(inputs, out: Path, *, tokenizer: str | None = None,
                   vocab_size: int = DEFAULT_VOCAB, documents: str = "file",
                   text_field: str = "text", validation: float = 0.02, seed: int = 0,
                   lowercase: bool = True, quiet: bool = False,
                   overwrite: bool = False) -> dict:
    """Tokenise `inputs` (paths / globs, or a Corpus) into shards under `out`.

    tokenizer: a tokenizer.json or checkpoint directory; None trains a WordPiece tokenizer of
    `vocab_size` on the same corpus first. overwrite: replace shards already in `out`
    (otherwise refused). Returns the shard manifest.
    """
    from unmask.data import Corpus, DecodingWarning, prepare_shards, train_tokenizer

    corpus = inputs if isinstance(inputs, Corpus) else Corpus(inputs, documents, text_field)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DecodingWarning)
        if tokenizer is None:
            tok = train_tokenizer(corpus, vocab_size=vocab_size, lowercase=lowercase)
        else:  # any checkpoint's tokenizer files, or a tokenizer.json; one clear line if not
            from unmask.tokenizer import Tokenizer

            tok = Tokenizer.from_pretrained(tokenizer)
        manifest = prepare_shards(corpus, tok, out, validation=validation, seed=seed,
                                  overwrite=overwrite)
    if not quiet:
        # one line per badly encoded file, not one per tokenizer pass
        for message in sorted({str(w.message) for w in caught}):
            print(f"warning: {message}", file=sys.stderr)
    return manifest


def _report_shards(manifest: dict, out: Path, seq_len: int) -> None:
    from unmask.data import TokenShards, plan_rows

    train = manifest["splits"]["train"]
    val = manifest["splits"].get("validation", {"num_documents": 0, "num_tokens": 0})
    print(f"prepared {out}: {train['num_documents']:,} training documents "
          f"({train['num_tokens']:,} tokens), {val['num_documents']:,} validation documents "
          f"({val['num_tokens']:,} tokens), {manifest['dtype']} ids, vocabulary "
          f"{manifest['vocab_size']:,}, {manifest['prepare']['tokens_per_second']:,} tokens/s")
    stats = plan_rows(TokenShards(out, "train").document_lengths, seq_len).stats
    print(f"packing at seq_len {seq_len}: {stats}")


def cmd_prepare(args) -> int:
    if args.train_tokenizer and args.tokenizer:
        raise SystemExit("error: pass --tokenizer (use an existing one) or --train-tokenizer "
                         "(train one on this corpus), not both")
    try:
        manifest = prepare_corpus(
            args.inputs, Path(args.out), tokenizer=args.tokenizer, vocab_size=args.vocab_size,
            documents=args.documents, text_field=args.text_field, validation=args.validation,
            seed=args.seed, lowercase=not args.cased, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as e:
        raise SystemExit(f"error: {e}") from None
    _report_shards(manifest, Path(args.out), args.seq_len)
    return 0


def _data_path(args) -> Path:
    """Where the shards to train on are (or will be, once _data_dir prepares them)."""
    return Path(args.data) if args.data else Path(args.out) / "data"


def _data_dir(args) -> Path:
    """The shard directory to train on, preparing --corpus (or the docstring corpus) first."""
    out = _data_path(args)
    if args.data:
        return out
    manifest = out / "manifest.json"
    if manifest.is_file() and (args.resume or args.reuse_data):
        return out
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 prepares, others wait for it
        started = time.time()
        while not manifest.is_file() or manifest.stat().st_mtime < started - 1:
            time.sleep(0.5)
        return out
    if args.corpus:
        inputs, what = args.corpus, " ".join(args.corpus)
    else:
        from unmask.data import Corpus
        from unmask.data.docstrings import docstring_corpus

        texts = docstring_corpus(max_chars=args.corpus_chars)
        inputs = Corpus.from_texts(texts)
        what = f"the docstrings of Python and installed packages ({len(texts):,} documents)"
    print(f"preparing {what} -> {out}")
    tokenizer = args.tokenizer or (args.init if args.init and
                                   (Path(args.init) / "tokenizer.json").is_file() else None)
    manifest = prepare_corpus(inputs, out, tokenizer=tokenizer, vocab_size=args.vocab_size,
                              documents=args.documents, validation=args.validation,
                              seed=args.seed, overwrite=True)  # only OUT/data, ours
    _report_shards(manifest, out, args.seq_len)
    return out


def run_pretraining(args) -> dict:
    """Prepare (if needed), train, save; prints a summary. Returns Trainer.run()'s result."""
    from unmask.train.distributed import cleanup
    from unmask.train.loop import check_run_dir
    from unmask.train.pretrain import PretrainRecipe, pretrainer
    from unmask.train.settings import from_args

    settings = from_args(args)
    check_run_dir(Path(args.out), settings.resume, settings.overwrite)  # before preparing
    if args.resume and not args.data and not (Path(args.out) / "data" / "manifest.json").is_file():
        raise FileNotFoundError(f"{args.out} holds no prepared data to resume with; pass "
                                "--data, or start without --resume")
    recipe = PretrainRecipe(  # refuses bad values before minutes of corpus preparation
        data=str(_data_path(args)),
        **{f.name: getattr(args, f.name) for f in fields(PretrainRecipe)[1:]})
    _data_dir(args)
    trainer = pretrainer(recipe, settings)
    baseline = trainer.evaluator.baseline if trainer.evaluator else None
    if trainer.dist.is_main:
        n = sum(p.numel() for p in trainer.objective.parameters())
        g = args.batch_size * args.accumulate * trainer.dist.world_size
        where = f"{trainer.dist.world_size} process(es) on {trainer.dist.device}"
        print(f"{trainer.objective.title} ({args.masking} masking, rate {args.mask_rate}): "
              f"{n / 1e6:.1f} M parameters, global batch {g} x "
              f"{args.seq_len}, {where}, {'bf16' if trainer.use_bf16 else 'fp32'}"
              + (f"; resuming at step {trainer.step}" if args.resume else ""))
        if baseline is not None:
            print(f"unigram baseline (loss of ignoring context): {baseline:.3f}")
    result = {**trainer.run(), "baseline": baseline}
    if trainer.dist.is_main:
        ev, tr = result["eval"], result["train"]
        line = f"done: {result['step']} steps"
        if tr:
            line += f", train loss {tr['loss']:.3f}, {tr['tokens_per_s']:,.0f} tokens/s"
        if ev:
            line += (f"; validation loss {ev['loss']:.3f}, accuracy {ev['accuracy']:.1%}, "
                     f"perplexity {ev['perplexity']:.1f}")
            if "disc_auc" in ev:
                line += (f"; discriminator accuracy {ev['disc_accuracy']:.1%}, AUC "
                         f"{ev['disc_auc']:.3f}")
        print(line)
        out = Path(args.out)
        print(f"saved {out / 'model'} (unmask), {out / 'hf'} (Hugging Face layout), "
              f"{out / 'metrics.jsonl'}, {out / 'loss.png'}")
    cleanup(trainer.dist)
    return result


def cmd_pretrain(args) -> int:
    try:
        run_pretraining(args)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    return 0


def _corpus_arguments(p) -> None:
    """The flags of `unmask prepare` that `unmask pretrain --corpus` takes too."""
    p.add_argument("--vocab-size", type=vocab_size, default=DEFAULT_VOCAB,
                   help="size of the trained tokenizer's vocabulary")
    p.add_argument("--documents", choices=("file", "blank_line"), default="file",
                   help="one document per file, or per blank-line-separated block")
    p.add_argument("--validation", type=fraction_or_count, default=0.02,
                   help="validation documents: fraction (<1) or count")


def add_training_arguments(p) -> None:
    """The flags of `unmask pretrain` (the demo reuses them)."""
    from unmask.train.pretrain import PretrainRecipe
    from unmask.train.settings import add_arguments

    data = p.add_argument_group("data")
    data.add_argument("--data", help="prepared shard directory (unmask prepare)")
    data.add_argument("--corpus", nargs="+", help="raw text files/folders/globs to prepare "
                      "into OUT/data first (default: Python docstrings)")
    data.add_argument("--tokenizer", help="tokenizer.json / checkpoint dir for --corpus "
                      "(default: train a WordPiece tokenizer)")
    _corpus_arguments(data)
    data.add_argument("--corpus-chars", type=positive_int, default=5_000_000,
                      help="size of the default docstring corpus")
    data.add_argument("--reuse-data", action="store_true",
                      help="reuse OUT/data if it was prepared before")
    types = {"mask_rate": real(0, 1, low_open=True, high_open=True),
             "dropout": real(0, 1, high_open=True), "seq_len": seq_len,
             "batch_size": positive_int, "eval_batches": non_negative_int}
    model = p.add_argument_group("model and objective")
    for f in fields(PretrainRecipe)[1:]:  # all but data (the data group's --data)
        model.add_argument("--" + f.name.replace("_", "-"), type=types.get(f.name),
                           default=f.default, choices=f.metadata.get("choices"),
                           help=f.metadata["help"])
    add_arguments(p, out="runs/pretrain")


def register(sub) -> None:
    prep = sub.add_parser("prepare", help="raw text -> memory-mapped token shards")
    prep.add_argument("inputs", nargs="+", help=".txt / .jsonl / .gz files, folders or globs")
    prep.add_argument("--out", required=True, help="shard directory to write")
    prep.add_argument("--tokenizer", help="tokenizer.json or checkpoint directory")
    prep.add_argument("--train-tokenizer", action="store_true",
                      help="train a WordPiece tokenizer on the corpus (default without "
                      "--tokenizer)")
    _corpus_arguments(prep)
    prep.add_argument("--cased", action="store_true", help="trained tokenizer keeps case")
    prep.add_argument("--text-field", default="text", help="the text field of .jsonl records")
    prep.add_argument("--seq-len", type=seq_len, default=128, help="for the packing report")
    prep.add_argument("--seed", type=non_negative_int, default=0,
                      help="validation split and shard order")
    prep.add_argument("--overwrite", action="store_true",
                      help="replace the shards already in --out")
    prep.set_defaults(func=cmd_prepare)

    pre = sub.add_parser("pretrain", help="pretrain a masked language model on your text")
    add_training_arguments(pre)
    pre.set_defaults(func=cmd_pretrain)
