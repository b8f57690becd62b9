"""Short-row attention on CPU: per-length groups (what the unpadded layout runs) vs rows packed
block-diagonally into ~64 / 128 / 256-token blocks (one masked SDPA call per block).

The question behind it (#17): the bf16 embed pipeline on short SST-2 sentences spends ~82 ms in
SDPA over ~25-token rows, at ~14 GFLOP/s. Packing rows into longer blocks does more work (every
token attends to its whole block, masked) in fewer, larger calls; this times whether that pays.
MiniLM's attention shape (12 heads of 32), 960 tokens per call, 30 timed calls, median us.

    .venv/bin/python benchmarks/bench_packed_attention.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

torch.manual_seed(0); torch.set_num_threads(2)
nh, hd = 12, 32
def med(fn, *a):
    with torch.inference_mode():
        for _ in range(5): fn(*a)
        ts = []
        for _ in range(30):
            t0 = time.perf_counter(); fn(*a); ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6
def sdpa(q, k, v, m): return F.scaled_dot_product_attention(q, k, v, attn_mask=m)
for dt in (torch.bfloat16, torch.float32):
  for w in (12, 25, 40):
    T = 960  # tokens in the call
    b = T // w
    q, k, v = (torch.randn(b, nh, w, hd, dtype=dt) for _ in range(3))
    t_grouped = med(sdpa, q, k, v, None)
    row = [f"{dt} w={w} grouped {t_grouped:.0f}us"]
    for blk in (64, 128, 256):
        per = blk // w; nb = -(-b // per); L = per * w
        qb, kb, vb = (torch.randn(nb, nh, L, hd, dtype=dt) for _ in range(3))
        seg = torch.arange(L) // w
        m = (seg[:, None] == seg[None, :])[None, None].expand(nb, 1, L, L)
        row.append(f"blk{blk}(L={L}) {med(sdpa, qb, kb, vb, m):.0f}us")
    print(" | ".join(row), flush=True)
print(describe())
