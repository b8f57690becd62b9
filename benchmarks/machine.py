"""The machine a benchmark ran on, printed under every table."""

from __future__ import annotations

import os
import platform

import torch

from unmask.hardware import cpu_flags, cpu_has_bf16

# The vector extensions the matrix products can use: record them with every benchmark (bf16
# is native with avx512_bf16 or amx_bf16, emulated and far slower than fp32 without).
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
         "amx_bf16", "amx_int8")


def describe() -> str:
    """One line: CPU model, cores, torch version and threads (and GPU when present), then the
    CPU flags of FLAGS it has."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [cpu, f"{os.cpu_count()} cores", f"torch {torch.__version__}",
             f"{torch.get_num_threads()} threads"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name())
    have = cpu_flags()
    flags = " ".join(f for f in FLAGS if f in have) or "unknown"
    return "machine: " + ", ".join(parts) + f"; CPU flags: {flags}"


def has_fast_bf16() -> bool:
    """True when the CPU has bfloat16 dot products (AVX-512 BF16 or AMX), or a GPU is used."""
    return torch.cuda.is_available() or cpu_has_bf16()
