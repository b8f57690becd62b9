"""Short-row attention on CPU: per-length groups (what the unpadded layout runs) vs rows packed
block-diagonally into ~64 / 128 / 256-token blocks (one masked SDPA call per block).

The question behind it (#17): the bf16 embed pipeline on short SST-2 sentences spends ~82 ms in
SDPA over ~25-token rows, at ~14 GFLOP/s. Packing rows into longer blocks does more work (every
token attends to its whole block, masked) in fewer, larger calls; this times whether that pays.
MiniLM's attention shape (12 heads of 32), 960 tokens per call, 30 timed calls, median us.
An internal path: the kernel calls alone, not a pipeline.

    .venv/bin/python benchmarks/bench_packed_attention.py
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

HEADS, HEAD_DIM = 12, 32  # all-MiniLM-L6-v2
TOKENS = 960  # real tokens per attention call
WIDTHS = (12, 25, 40)  # row lengths
BLOCKS = (64, 128, 256)


def median_us(q, k, v, mask, warmup: int = 5, calls: int = 30) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def qkv(rows: int, width: int, dtype: torch.dtype):
    return (torch.randn(rows, HEADS, width, HEAD_DIM, dtype=dtype) for _ in range(3))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    print("| dtype | row width | length groups | "
          + " | ".join(f"{b}-token blocks" for b in BLOCKS) + " |")
    print("|---|---|---|" + "---|" * len(BLOCKS))
    for dtype in (torch.bfloat16, torch.float32):
        for width in WIDTHS:
            rows = TOKENS // width
            cells = [f"{median_us(*qkv(rows, width, dtype), None):,.0f} us"]
            for block in BLOCKS:
                per = block // width  # rows per block
                length = per * width
                segment = torch.arange(length) // width  # the row each position belongs to
                mask = (segment[:, None] == segment[None, :])[None, None]  # (1, 1, L, L)
                blocks = -(-rows // per)
                mask = mask.expand(blocks, 1, length, length)
                cells.append(f"{median_us(*qkv(blocks, length, dtype), mask):,.0f} us "
                             f"(L={length})")
            print(f"| {str(dtype).removeprefix('torch.')} | {width} | " + " | ".join(cells)
                  + " |", flush=True)
    print(describe())


if __name__ == "__main__":
    main()
