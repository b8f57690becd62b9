"""The HTTP server: every endpoint, limits, errors, micro-batching, and a real uvicorn run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from test_pipelines_assets import tiny
from unmask.server import create_app, load_pipelines


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
    health = c.get("/health").json()
    assert health["status"] == "ok" and health["tasks"] == sorted(pipes)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*flags: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "unmask.cli", "serve", "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.communicate()[0])


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def test_uvicorn_serves_refuses_hostile_clients_and_shuts_down_gracefully(dirs):
    proc, url = _start("--fill-mask", str(dirs["mlm"]), "--max-body-bytes", "100000")
    try:
        r = httpx.post(url + "/fill", json={"inputs": "a [MASK] b"}, timeout=30)
        assert r.status_code == 200 and len(r.json()) == 5
        # a chunked upload of 50 MB: refused at the limit, not read into memory
        rss = psutil.Process(proc.pid).memory_info().rss

        def chunks():
            yield b'{"inputs": "'
            for _ in range(800):
                yield b"x" * 65536

        try:
            r = httpx.post(url + "/fill", content=chunks(), timeout=30,
                           headers={"content-type": "application/json"})
            assert r.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close the connection while the client still writes
        assert psutil.Process(proc.pid).memory_info().rss < rss + 20e6
        # DNS rebinding: a page on attacker.example resolving to 127.0.0.1
        r = httpx.get(url + "/health", headers={"host": "attacker.example"}, timeout=10)
        assert r.status_code == 400 and "--allowed-hosts" in r.json()["detail"]
        assert httpx.get(url + "/health", timeout=10).json()["status"] == "ok"
    finally:
        out = _stop(proc)
    assert "Application shutdown complete" in out


def test_two_worker_processes_answer(dirs):
    proc, url = _start("--fill-mask", str(dirs["mlm"]), "--workers", "2")
    try:
        def workers():  # uvicorn's spawned worker processes (not multiprocessing's tracker)
            return [p for p in psutil.Process(proc.pid).children()
                    if "spawn_main" in " ".join(p.cmdline())]

        assert len(workers()) == 2
        pids = set()
        for _ in range(20):
            with httpx.Client(base_url=url) as c:  # a new connection each time
                r = c.post("/fill", json={"inputs": "a [MASK] b"}, timeout=30)
                assert r.status_code == 200 and len(r.json()) == 5
                pids.add(c.get("/health").json()["pid"])
        assert pids <= {w.pid for w in workers()}
    finally:
        out = _stop(proc)
    assert out.count("Application shutdown complete") == 2


@pytest.mark.parametrize("flags, says", [
    (["--port", "-1"], "--port: '-1' is out of range: give an integer in [1, 65535]"),
    (["--port", "99999"], "--port: '99999' is out of range"),
    (["--workers", "0"], "--workers: '0' is out of range"),
    (["--timeout", "nan"], "--timeout: 'nan' is not a finite number"),
    (["--batch-tokens", "1" * 400], "--batch-tokens: '111"),
    (["--max-cost", "many"], "--max-cost: 'many' is not an integer"),
])
def test_numeric_flags_are_checked_with_one_line(flags, says, capsys):
    from unmask.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["serve", *flags])
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_a_truncated_checkpoint_says_why_it_cannot_be_served(dirs, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(dirs["mlm"], bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        load_pipelines(str(bad))
    assert "fill-mask" in str(err.value) and "no pipeline to serve" in str(err.value)
