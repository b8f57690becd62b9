"""The HTTP server: every endpoint, limits, errors, micro-batching, and a real uvicorn run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from test_pipelines_assets import tiny
from unmask.serve import MicroBatcher, create_app, load_pipelines


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {k: tiny(root / k, k) for k in ("mlm", "ner", "qa", "nli")}


@pytest.fixture(scope="module")
def client(dirs):
    pipes = load_pipelines(per_task={"fill-mask": dirs["mlm"], "score": dirs["mlm"],
                                     "ner": dirs["ner"], "answer": dirs["qa"],
                                     "zero-shot": dirs["nli"], "classify": dirs["nli"]})
    app = create_app(pipes, max_texts=8, max_chars=300, max_body_bytes=4000)
    with TestClient(app) as c:
        yield c, pipes


def test_endpoints_answer_like_the_pipelines(client):
    c, pipes = client
    assert c.get("/health").json() == {"status": "ok", "tasks": sorted(pipes)}
    text = "The cat [MASK] on the mat."
    assert c.post("/fill", json={"inputs": text, "top_k": 3}).json() == pipes["fill-mask"](
        text, top_k=3)
    got = c.post("/fill", json={"inputs": [text, text], "top_k": 2}).json()
    assert len(got) == 2 and got[0] == got[1]
    assert c.post("/score", json={"inputs": "The cat sat."}).json()["pll"] < 0
    ner = c.post("/ner", json={"inputs": "Wolfgang lives in Berlin", "aggregation": "first"})
    assert ner.json() == pipes["ner"]("Wolfgang lives in Berlin", aggregation="first")
    ans = c.post("/answer", json={"question": "Where?", "context": "Wolfgang lives in Berlin"})
    assert set(ans.json()) == {"answer", "score", "start", "end"}
    zs = c.post("/zero-shot", json={"inputs": "I love it", "candidate_labels": ["a", "b"]})
    assert sorted(zs.json()["labels"]) == ["a", "b"]
    assert c.post("/classify", json={"inputs": ["x", "y"], "top_k": 2}).status_code == 200
    assert c.get("/openapi.json").json()["paths"].keys() >= {"/fill", "/ner", "/health"}


def test_limits_and_errors_have_clear_messages(client):
    c, _ = client
    r = c.post("/fill", json={"inputs": "nothing masked"})
    assert r.status_code == 400 and "no mask token" in r.json()["detail"]
    assert c.post("/fill", json={"inputs": ["a [MASK]"] * 9}).status_code == 413
    r = c.post("/fill", json={"inputs": "[MASK] " + "x" * 400})
    assert r.status_code == 413 and "characters" in r.json()["detail"]
    assert c.post("/fill", content=b'{"inputs": "' + b"y" * 5000 + b'"}',
                  headers={"content-type": "application/json"}).status_code == 413
    r = c.post("/fill", json={"text": "forgot the field name"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "inputs"]
    assert c.post("/fill", json={"inputs": "a [MASK]", "top_k": 0}).status_code == 422
    r = c.post("/embed", json={"inputs": "no embedder loaded"})
    assert r.status_code == 404 and "no embed model" in r.json()["detail"]


def test_micro_batching_merges_concurrent_requests_and_isolates_failures():
    calls = []

    def fn(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item")
        return [x.upper() for x in items]

    async def main():
        batcher = MicroBatcher(fn, ThreadPoolExecutor(1), max_batch=64, wait_ms=50)
        jobs = [batcher([f"t{i}"]) for i in range(10)] + [batcher(["bad"])]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.drain()
        return out

    out = asyncio.run(main())
    assert out[:10] == [[f"T{i}"] for i in range(10)]
    assert isinstance(out[10], ValueError)
    assert len(calls[0]) == 11  # all merged into one call first, then retried alone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uvicorn_serves_and_shuts_down_gracefully(dirs):
    port = _free_port()
    cmd = [sys.executable, "-m", "unmask.cli", "serve", "--fill-mask", str(dirs["mlm"]),
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.post(url + "/fill", json={"inputs": "a [MASK] b"}, timeout=30)
        assert r.status_code == 200 and len(r.json()) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Application shutdown complete" in out
