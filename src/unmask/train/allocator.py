"""glibc malloc settings for training on the CPU: keep freed memory for reuse.

A training step frees and allocates the same large tensors over and over (activations,
gradients, casts of the weights). glibc returns big blocks to the kernel when they are freed
(mmap above its threshold, heap trimming at the top), so the next step page-faults them back
in, zero-filled. With the mmap threshold fixed at its largest (32 MB) and trimming off, those
blocks stay in the process and are reused: far fewer page faults per step at about the same
peak memory (benchmarks/RESULTS.md has the measurements).

The settings are process-wide and only change where glibc puts memory, never what a program
computes. They are not applied where the user set glibc's own variables
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_: theirs win), with
UNMASK_MALLOC=default, or where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper bound on 64-bit systems
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to 32 MB and stop heap trimming; True if applied."""
    if not sys.platform.startswith("linux") or os.environ.get("UNMASK_MALLOC") == "default":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
