"""Soak test of `unmask serve` under hostile clients: does it stay up, fair and bounded?

    .venv/bin/python benchmarks/bench_soak.py                      # 180 s, 64 clients
    .venv/bin/python benchmarks/bench_soak.py --seconds 60 --concurrency 32

The server runs in its own process with its defaults: `unmask serve --model all-MiniLM-L6-v2`
(embed, similarity) plus --fill-mask / --score on MiniLM's encoder under a random MLM head
(see bench_pipelines.py). `concurrency` clients run at once, in this process, for `seconds`:

  good       (all but 8)  one SST-2 sentence: /fill (one mask), /embed or /score; must be 200
  large      2            /score of ~600 tokens (within the budget: ~300k token-passes)
  huge       1            /score of 20,000 characters (over the budget: 413 before any work)
  hangup     1            a large /score, then the client hangs up after 1 s (work dropped)
  bad        2            malformed JSON, a missing field, no mask token, a lone surrogate (4xx)
  oversize   1            a 5 MB chunked upload (413 at the 1 MB limit, connection closed)
  slow       1            a body trickled in at 10 bytes/s (408 at the timeout, or served)

Reported: per kind the requests, answers by status, and latency p50 / p99; failed good
requests (must be 0); the server's RSS at the start, its peak and at the end (after the load,
5 s idle), sampled every 0.5 s, and its timeline every 15 s (flat after warm-up, or rising?);
the server's counters (batches run for large calls, model seconds held by small and large
calls, heap trims); the machine's load average before and after. Exit status 1 when a good
request failed or the server died.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench_pipelines import checkpoints, sst2, with_masks
from bench_serve import start
from machine import describe

LATE = ("large", "huge", "hangup", "bad", "bad", "oversize", "slow", "large")


async def raw(port: int, head: bytes, body_parts, pause: float) -> int | None:
    """Send a request by hand (headers, then body parts `pause` s apart); the status or None."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        line = await asyncio.wait_for(reader.readline(), 120)
        return int(line.split()[1]) if line else None
    except (TimeoutError, ConnectionError, IndexError, ValueError):
        return None
    finally:
        writer.close()


class Load:
    def __init__(self, url: str, texts: list[str], masked: list[str]):
        self.url, self.port = url, int(url.rsplit(":", 1)[1])
        self.texts, self.masked = texts, masked
        self.long = " ".join(texts)[:2800]  # ~600 tokens
        self.huge = (" ".join(texts) * 3)[:20000]
        self.status: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.failed_good = 0

    async def one(self, client: httpx.AsyncClient, kind: str, rng: random.Random) -> None:
        t0 = time.perf_counter()
        status: int | str
        try:
            status = await self.request(client, kind, rng)
        except httpx.HTTPError as err:
            status = type(err).__name__
        self.status[kind][status] += 1
        self.latency[kind].append(time.perf_counter() - t0)
        if kind.startswith("good") and status != 200:
            self.failed_good += 1

    async def request(self, client: httpx.AsyncClient, kind: str, rng: random.Random):
        if kind == "good fill":
            r = await client.post("/fill", json={"inputs": rng.choice(self.masked)})
            return r.status_code if r.status_code != 200 or len(r.json()) == 5 else "wrong"
        if kind == "good embed":
            r = await client.post("/embed", json={"inputs": rng.choice(self.texts)})
            return r.status_code if r.status_code != 200 or len(r.json()) == 384 else "wrong"
        if kind == "good score":
            r = await client.post("/score", json={"inputs": rng.choice(self.texts)[:80]})
            return r.status_code
        if kind == "large":
            return (await client.post("/score", json={"inputs": self.long})).status_code
        if kind == "huge":
            return (await client.post("/score", json={"inputs": self.huge})).status_code
        if kind == "hangup":
            try:
                await client.post("/score", json={"inputs": self.long}, timeout=1)
            except httpx.TimeoutException:
                return "hung up"
            return "answered"
        if kind == "bad":
            body = rng.choice([b'{"inputs": ', b'{"text": "x"}', b'{"inputs": "no mask"}',
                               b'{"inputs": "\\ud800 [MASK]"}', b'[[[[[[[[', b'{"top_k": -1}'])
            r = await client.post("/fill", content=body,
                                  headers={"content-type": "application/json"})
            return r.status_code
        host = f"Host: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n".encode()
        if kind == "oversize":
            head = b"POST /embed HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n"
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            return await raw(self.port, head, [b"5\r\n" + b'{"a":' + b"\r\n"] + [chunk] * 80, 0)
        if kind == "slow":
            body = json.dumps({"inputs": "a slow client"}).encode()
            head = (b"POST /embed HTTP/1.1\r\n" + host
                    + b"Content-Length: %d\r\n\r\n" % len(body))
            return await raw(self.port, head, [body[i: i + 10] for i in range(0, len(body), 10)],
                             1.0)
        raise ValueError(kind)

    async def run(self, seconds: float, concurrency: int) -> None:
        stop = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=120) as client:

            async def worker(i: int):
                rng = random.Random(i)
                while time.perf_counter() < stop:
                    if i < len(LATE):
                        kind = LATE[i]
                    else:
                        kind = rng.choice(("good fill", "good embed", "good score"))
                    await self.one(client, kind, rng)

            await asyncio.gather(*(worker(i) for i in range(concurrency)))


EVERY = 0.5  # seconds between RSS samples


async def sample_rss(pid: int, out: list[float], stop: asyncio.Event) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        out.append(proc.memory_info().rss / 1e9)
        await asyncio.sleep(EVERY)


def timeline(rss: list[float], step_s: float = 15) -> str:
    """RSS every step_s seconds of the run, and the last sample (after the idle pause)."""
    step = max(int(step_s / EVERY), 1)
    marks = [f"{i * EVERY:.0f}s {rss[i]:.2f}" for i in range(0, len(rss), step)]
    return ", ".join(marks + [f"end {rss[-1]:.2f}"])


def loadavg() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


async def soak(load: Load, pid: int, seconds: float, concurrency: int) -> list[float]:
    rss: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, rss, stop))
    await load.run(seconds, concurrency)
    await asyncio.sleep(5)  # idle: what stays
    stop.set()
    await sampler
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    texts = sst2(872)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = checkpoints(Path(tmp))
        mlm = str(dirs["fill-mask"])
        proc, url = start("--model", str(dirs["embed"]), "--fill-mask", mlm, "--score", mlm)
        try:
            with httpx.Client(base_url=url, timeout=120) as c:  # warm up each route once
                c.post("/fill", json={"inputs": with_masks(texts[:1])[0]})
                c.post("/embed", json={"inputs": texts[0]})
                c.post("/score", json={"inputs": texts[0]})
            start_rss = psutil.Process(proc.pid).memory_info().rss / 1e9
            load_before = loadavg()
            load = Load(url, texts, with_masks(texts))
            rss = asyncio.run(soak(load, proc.pid, args.seconds, args.concurrency))
            load_after = loadavg()
            health = httpx.get(url + "/health", timeout=30).json()
            alive = proc.poll() is None
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
    print(f"soak test: {args.seconds:.0f} s, {args.concurrency} concurrent clients against "
          f"`unmask serve` (defaults) with all-MiniLM-L6-v2; server alive at the end: {alive}, "
          f"exit code after SIGINT: {code}")
    print("| clients | requests | answers | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for kind in sorted(load.status):
        lat = np.array(load.latency[kind]) * 1000
        answers = ", ".join(f"{k}: {v}" for k, v in load.status[kind].most_common())
        print(f"| {kind} | {len(lat)} | {answers} | {np.percentile(lat, 50):.0f} | "
              f"{np.percentile(lat, 99):.0f} |")
    good = np.concatenate([load.latency[k] for k in load.latency if k.startswith("good")]) * 1000
    print(f"failed good requests: {load.failed_good} of {len(good)}; good p50 / p99: "
          f"{np.percentile(good, 50):.0f} / {np.percentile(good, 99):.0f} ms")
    print(f"server RSS: start {start_rss:.2f} GB, peak {max(rss):.2f} GB, end {rss[-1]:.2f} GB")
    print(f"server RSS timeline (GB): {timeline(rss)}")
    print(f"server counters: {health['load']}")
    print(f"load average (1 / 5 / 15 min): {load_before} before the load, {load_after} after")
    print(describe())
    return 0 if load.failed_good == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
