"""Sliding-window attention at 4,096 tokens: dense masked SDPA vs unmask's block-sparse path.

Axes: B batch, H heads, L tokens (queries = keys), D head dim; nq query blocks of bq tokens,
each reading m key blocks of bk tokens.

Problem: B=1, H=8, L=4096, D=64, float32, CPU, mask = masks.window(4096, 128): each query sees
the 64 tokens on either side (ModernBERT's local attention of 128), 129 keys out of 4,096.

Rows, all given the same q, k, v and the same bool mask, all checked against the peer:
  torch SDPA, dense mask   the peer: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
  unmask sdpa              the same call plus unmask's empty-row guard
  unmask eager             the written-out reference, (B, H, L, L) scores in memory
  unmask sparse (bs)       block-sparse path, block size bs: gathers the needed K/V blocks only
  flex, compiled (CPU)     torch FlexAttention via attention_flex(compile=True); the compile
                           time (10-20 s, once per shape) is reported apart, not in ms/call

Time: one warm-up call per row, then REPEATS rounds that call every row once in turn
(interleaved, so load bursts on a shared machine hit all rows); median per row.
Memory, two numbers per row:
  peak MB    measured: each row runs in a fresh child process that builds the inputs, makes
             one warm-up call, returns freed memory to the OS (malloc_trim), resets the
             kernel's peak-RSS counter (/proc/self/clear_refs) and makes one more call; the
             figure is the peak resident memory above what was resident before that call,
             i.e. everything the call allocated at once (scores, gathered blocks, mask copies).
             (tracemalloc does not see torch's allocations; the CPU has no allocator stats.)
  est. MB    from tensor sizes: the mask and score tensors the algorithm materialises if the
             kernel does not tile them (dense: L*L mask bytes + B*H*L*L float32 scores;
             sparse: padded mask copy + per-block masks + gathered K and V + block scores).
Run: .venv/bin/python benchmarks/bench_sliding_window.py [--no-flex]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path
from unmask import masks
from unmask.attention import attention, attention_flex, attention_sparse

B, H, L, D, WINDOW = 1, 8, 4096, 64, 128
REPEATS = 5
MB = 2**20


def inputs():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, L, D, generator=gen) for _ in range(3))
    return q, k, v, masks.window(L, WINDOW)


def variants(with_flex: bool):
    """name -> (function(q, k, v, mask) -> out, estimated bytes of mask + scores)."""
    dense_est = L * L + B * H * L * L * 4

    def sparse_est(bs):
        nq = math.ceil(L / bs)
        m = 2 * math.ceil((WINDOW // 2) / bs) + 1  # key blocks a query block touches
        keys = m * bs
        return (nq * bs) ** 2 + nq * bs * keys + 2 * B * H * nq * keys * D * 4 \
            + B * H * nq * bs * keys * 4

    rows = {
        "torch SDPA, dense mask": (
            lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m.allowed),
            dense_est,
        ),
        "unmask sdpa": (lambda q, k, v, m: attention(q, k, v, m, backend="sdpa"), dense_est),
        "unmask eager": (lambda q, k, v, m: attention(q, k, v, m, backend="eager"), dense_est),
        "unmask sparse (bs=32)": (
            lambda q, k, v, m: attention_sparse(q, k, v, m, block_size=32), sparse_est(32)
        ),
        "unmask sparse (bs=64)": (
            lambda q, k, v, m: attention_sparse(q, k, v, m, block_size=64), sparse_est(64)
        ),
    }
    if with_flex:
        tiles = L // 128
        flex_est = L * L + 2 * tiles * tiles * 4  # mask + BlockMask indices; kernel tiles scores
        rows["flex, compiled (CPU)"] = (
            lambda q, k, v, m: attention_flex(q, k, v, m, compile=True), flex_est
        )
    return rows


# --- memory, measured in a child process ------------------------------------------------

def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(name: str, with_flex: bool) -> None:
    fn, _ = variants(with_flex)[name]
    q, k, v, m = inputs()
    with torch.no_grad():
        out = fn(q, k, v, m)  # warm-up: thread pools, kernels, compilation
        del out
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter to the current RSS
        before = _rss_kb("VmRSS")
        out = fn(q, k, v, m)  # noqa: F841  (held until the peak is read)
        peak = _rss_kb("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024}))


def measure_memory(name: str, with_flex: bool) -> float | None:
    cmd = [sys.executable, __file__, "--child", name] + ([] if with_flex else ["--no-flex"])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError, OSError) as err:
        print(f"  (memory of {name!r} not measured: {err})", file=sys.stderr)
        return None


# --- main --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-flex", action="store_true", help="skip compiled FlexAttention")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with_flex = not args.no_flex
    if with_flex:
        try:
            masks.require_flex()
        except RuntimeError:
            with_flex = False
    if args.child:
        child(args.child, with_flex)
        return

    q, k, v, m = inputs()
    rows = variants(with_flex)
    results = {}
    with torch.no_grad():
        peer = rows["torch SDPA, dense mask"][0](q, k, v, m)
        for name, (fn, est) in rows.items():
            start = time.perf_counter()
            out = fn(q, k, v, m)  # warm-up (and, for flex, the compile)
            first = time.perf_counter() - start
            diff = (out - peer).abs().max().item()
            if not diff < 1e-5:
                raise SystemExit(f"{name} disagrees with dense SDPA: max |diff| = {diff:.2e}")
            results[name] = {"times": [], "first_s": first, "est_mb": est / MB, "diff": diff}
        # Rounds interleave the rows, so a burst of load on a shared machine hits all of them.
        for _ in range(REPEATS):
            for name, (fn, _est) in rows.items():
                start = time.perf_counter()
                fn(q, k, v, m)
                results[name]["times"].append(time.perf_counter() - start)
    for r in results.values():
        r["ms"] = 1000 * statistics.median(r["times"])
    for name in rows:
        results[name]["peak_mb"] = measure_memory(name, with_flex)

    base = results["torch SDPA, dense mask"]
    print(f"Sliding-window attention: B={B}, H={H}, L={L}, D={D}, float32, "
          f"masks.window({L}, {WINDOW}) (+-{WINDOW // 2}), density {m.density:.4f}")
    header = (f"{'variant':<26}{'ms/call':>9}{'speedup':>9}{'peak MB':>9}{'x mem':>7}"
              f"{'est. MB':>9}{'max |diff|':>12}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        peak = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        ratio = ("n/a" if r["peak_mb"] is None or not base["peak_mb"]
                 else f"{r['peak_mb'] / base['peak_mb']:.2f}")
        print(f"{name:<26}{r['ms']:>9.1f}{base['ms'] / r['ms']:>8.2f}x{peak:>9}{ratio:>7}"
              f"{r['est_mb']:>9.0f}{r['diff']:>12.1e}")
    if "flex, compiled (CPU)" in results:
        print(f"flex first call (torch.compile): {results['flex, compiled (CPU)']['first_s']:.1f} s")
    print("speedup = dense SDPA time / row time; x mem = row peak / dense SDPA peak;")
    print("est. MB = mask + scores if materialised (torch's CPU SDPA kernel tiles the dense")
    print("scores, so its measured peak stays far below the estimate; eager does not)")
    print(describe())


if __name__ == "__main__":
    main()
