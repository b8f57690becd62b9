"""keep_freed_memory: applied on glibc, never over the user's own malloc settings."""

import ctypes
import sys

import pytest

from unmask.train.allocator import keep_freed_memory


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_the_users_own_glibc_setting_wins(monkeypatch, name):
    monkeypatch.setenv(name, "4194304")
    assert keep_freed_memory() is False


def test_opt_out(monkeypatch):
    monkeypatch.setenv("UNMASK_MALLOC", "default")
    assert keep_freed_memory() is False


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_applied_on_glibc(monkeypatch):
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "UNMASK_MALLOC"):
        monkeypatch.delenv(name, raising=False)
    assert keep_freed_memory() is True
