"""Load test of `unmask serve` on loopback: latency percentiles and throughput.

    .venv/bin/python benchmarks/bench_serve.py                    # 5,000 requests, 64 at a time
    .venv/bin/python benchmarks/bench_serve.py --n 1000 --concurrency 16

The server runs in its own process (`unmask serve --fill-mask DIR`) with all-MiniLM-L6-v2's
encoder under a BertForMaskedLM head (random head, seed 0; see bench_pipelines.py); each
request is one SST-2 dev sentence with one word masked, POST /fill, top-5. The client keeps
`concurrency` requests in flight with httpx.AsyncClient, in this process, on the same
machine (its CPU use is part of the picture).

Peer, in the same run: the same server with micro-batching off (--max-batch 1), on fewer
requests (--peer-n), so the table shows what merging concurrent requests buys. Every
response must be 200 with 5 candidates; the answers of both servers are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench_pipelines import checkpoints, sst2, with_masks
from machine import describe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*flags: str) -> tuple[subprocess.Popen, str]:
    """`unmask serve --port P *flags` in its own process, once /health answers; (process, url)."""
    port = free_port()
    cmd = [sys.executable, "-m", "unmask.cli", "serve", "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


async def load(url: str, texts: list[str], n: int, concurrency: int):
    latencies, failures, answers = [], 0, {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker():
            nonlocal failures
            while not queue.empty():
                i = queue.get_nowait()
                text = texts[i % len(texts)]
                t0 = time.perf_counter()
                try:
                    r = await client.post("/fill", json={"inputs": text, "top_k": 5})
                    ok = r.status_code == 200 and len(r.json()) == 5
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                if ok:
                    answers[i % len(texts)] = [p["token"] for p in r.json()]
                else:
                    failures += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return np.array(latencies), failures, wall, answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--peer-n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    texts = with_masks(sst2(872))
    rows, answers = [], []
    with tempfile.TemporaryDirectory() as tmp:
        directory = checkpoints(Path(tmp))["fill-mask"]
        for name, max_batch, n in (("micro-batching (max 64)", 64, args.n),
                                   ("no batching (max 1)", 1, args.peer_n)):
            proc, url = start("--fill-mask", str(directory), "--max-batch", str(max_batch))
            try:
                lat, failed, wall, got = asyncio.run(load(url, texts, n, args.concurrency))
            finally:
                proc.send_signal(signal.SIGINT)  # graceful: finishes in-flight requests
                code = proc.wait(timeout=60)
            rows.append((name, n, failed, np.percentile(lat, 50) * 1000,
                         np.percentile(lat, 99) * 1000, n / wall, code))
            answers.append(got)
    same = all(answers[0][k] == v for k, v in answers[1].items() if k in answers[0])
    print(f"loopback load test: POST /fill, {args.concurrency} concurrent requests; "
          f"answers identical across servers: {same}")
    print("| server | requests | failed | p50 ms | p99 ms | requests/s | x throughput | "
          "exit code |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows[1][5]
    for name, n, failed, p50, p99, rps, code in rows:
        print(f"| {name} | {n} | {failed} | {p50:.0f} | {p99:.0f} | {rps:.1f} | "
              f"{rps / base:.2f} | {code} |")
    print(describe())
    return 0 if same and all(r[2] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
