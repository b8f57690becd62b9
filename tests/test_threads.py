"""One pipeline called from many threads at once gives every caller its own right answer.

HF tokenizers shared across threads raise "RuntimeError: Already borrowed" when one thread
changes truncation / padding while another encodes; a pipeline must be safe to share (the
server and user code call one from many threads).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from test_pipelines_assets import tiny
from unmask import pipeline
from unmask.hardware import check_threads, set_threads, threads_from_env


def test_eight_threads_many_calls_into_one_pipeline(tmp_path):
    fill = pipeline("fill-mask", tiny(tmp_path / "mlm", "mlm"))
    texts = [f"word {'and ' * (i % 9)}the [MASK] ends here." for i in range(24)]
    # different max lengths per call: the tokenizer's truncation setting changes every time
    calls = [(texts[i % len(texts): i % len(texts) + 1 + i % 3], 1 + i % 4) for i in range(160)]
    serial = [fill(t, top_k=k) for t, k in calls]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda c: fill(c[0], top_k=c[1]), calls))
    assert parallel == serial


def test_embed_from_threads_with_windows(tmp_path):
    embed = pipeline("embed", tiny(tmp_path / "enc", "mlm"))  # long texts -> windows
    texts = [" ".join(["Berlin is big."] * (1 + i % 30)) for i in range(40)]
    serial = [embed(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(embed, texts * 3))
    for i, v in enumerate(parallel):
        assert torch.allclose(v, serial[i % len(texts)], atol=1e-6)


def test_thread_settings(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        monkeypatch.setenv("UNMASK_THREADS", "2")
        assert threads_from_env() == 2 and set_threads() == 2
        monkeypatch.delenv("UNMASK_THREADS")
        assert set_threads() == 2  # nothing asked: left as it is
        for bad in ("0", "-1", "1.5", "many", 0):
            with pytest.raises(ValueError, match="whole number of threads"):
                check_threads(bad)
    finally:
        torch.set_num_threads(before)
