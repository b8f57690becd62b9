"""What the machine can run fast, and how many threads to use: one place for both questions.

bfloat16 halves memory traffic, but only helps where the hardware multiplies bf16 natively:
x86 CPUs with AVX-512 BF16 or AMX (Linux /proc/cpuinfo flags avx512_bf16 / amx_bf16), and
GPUs where torch.cuda.is_bf16_supported(). Elsewhere PyTorch emulates bf16 matmuls in fp32
with conversions on every call, which is several times slower than plain fp32
(benchmarks/RESULTS.md has the measurement), so the pipelines never pick bf16 silently there.

Threads: `unmask --threads N` and the environment variable UNMASK_THREADS both end up in
set_threads (torch.set_num_threads) before any work starts.
"""

from __future__ import annotations

import functools
import os

import torch

THREADS_VARIABLE = "UNMASK_THREADS"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo "flags"); empty where unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_has_int8_dot() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def fast_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 runs natively (not emulated) on `device` ("cpu", "cuda", "cuda:1")."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return cpu_has_bf16()
    return kind == "mps"


def threads_from_env() -> int | None:
    """UNMASK_THREADS as a positive int, None when unset; ValueError naming it when invalid."""
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return None
    return check_threads(raw, THREADS_VARIABLE)


def check_threads(value, name: str = "threads") -> int:
    """value as a thread count >= 1, or ValueError saying what `name` must be."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() not in (str(n), f"+{n}"):
        raise ValueError(f"{name} must be a whole number of threads >= 1, got {value!r}")
    return n


def set_threads(n: int | None = None) -> int:
    """Use n intra-op threads (None: UNMASK_THREADS if set, else torch's default).

    Returns the number of threads torch now uses.
    """
    n = threads_from_env() if n is None else n
    if n is not None:
        torch.set_num_threads(check_threads(n))
    return torch.get_num_threads()


__all__ = ["THREADS_VARIABLE", "check_threads", "cpu_flags", "cpu_has_bf16", "cpu_has_int8_dot",
           "fast_bf16", "set_threads", "threads_from_env"]
