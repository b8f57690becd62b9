"""The machine a benchmark ran on, printed under every table."""

from __future__ import annotations

import os
import platform

import torch

from unmask.train.loop import cpu_has_bf16


def describe() -> str:
    """One line: CPU model, cores, torch version and threads (and GPU when present)."""
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
    return "machine: " + ", ".join(parts)


def has_fast_bf16() -> bool:
    """True when the CPU has bfloat16 dot products (AVX-512 BF16 or AMX), or a GPU is used."""
    return torch.cuda.is_available() or cpu_has_bf16()
