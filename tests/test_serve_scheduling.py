"""The server under load: fair turns, budgets, timeouts, disconnects, bounded queues, the door.

Real tiny models (tests/test_pipelines_assets.tiny) with small batch_tokens, so one long text
is many batches; the ASGI app is driven directly where a client must misbehave exactly
(stream a body in chunks, hang up mid-request).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from test_pipelines_assets import tiny
from unmask.pipelines import pipeline
from unmask.scheduling import (
    Call,
    Dropped,
    Job,
    MicroBatcher,
    Queues,
    Scheduler,
    TimeShare,
    Turns,
    trim_memory,
)
from unmask.server import NATIVE_CACHES, bound_native_caches, cost_of, create_app

LONG = " ".join(["word"] * 400)  # 400 tokens: 400 PLL rows of 64 tokens, one per batch below


@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("sched") / "mlm", "mlm")


def pipes(mlm, batch_tokens=64):
    return {"fill-mask": pipeline("fill-mask", mlm, batch_tokens=batch_tokens),
            "score": pipeline("score", mlm, batch_tokens=batch_tokens)}


def test_turns_interleave_a_small_call_into_a_large_one():
    """A one-batch call admitted while a 200-batch call runs finishes after a batch or two."""
    sched = Scheduler(max_active=4, max_big=2, big_cost=10)
    log = []

    def work(name, n):
        def fn(items):
            for i in range(n):
                time.sleep(0.002)
                log.append((name, i))
                sched.boundary()
            return items
        return fn

    async def main():
        loop = asyncio.get_running_loop()
        big_job = Job([1], 1000, loop.create_future())
        big = loop.create_task(sched.run(Call(work("big", 200), [1], [big_job], 1000)))
        while len(log) < 5:
            await asyncio.sleep(0.001)
        small_job = Job([2], 1, loop.create_future())
        await sched.run(Call(work("small", 1), [2], [small_job], 1))
        at = len(log)
        await big
        return at

    at = asyncio.run(main())
    sched.close()
    small = log.index(("small", 0))
    assert at < 30 and small < 30, log[:40]  # not after the big call's 200 batches
    assert sum(name == "big" for name, _ in log) == 200


def _kinds_of_turns(large_share: float, turns_wanted: int = 13) -> str:
    """Turn order of 3 small callers (0.125 s turns) and 1 large one (0.25 s) that always want
    the model, on a clock the turns advance: "S" / "L" per turn. Deterministic: each holder
    waits until every other caller is queued before it records its turn and lets go."""
    clock = [0.0]
    turns = Turns(large_share, clock=lambda: clock[0])
    log: list[str] = []
    stop = threading.Event()

    def caller(kind: str):
        while True:
            turns.acquire(kind == "L")
            if stop.is_set():
                turns.release()
                return
            while not stop.is_set() and sum(turns.waiting()) < 3:
                time.sleep(0.0005)
            log.append(kind)
            clock[0] += 0.25 if kind == "L" else 0.125
            if len(log) >= turns_wanted:
                stop.set()
            turns.release()

    turns.acquire()  # hold the model until all four callers are queued
    threads = [threading.Thread(target=caller, args=(k,)) for k in "SSSL"]
    for t in threads:
        t.start()
    while turns.waiting() != (3, 1):
        time.sleep(0.0005)
    turns.release()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return "".join(log[:turns_wanted])


def test_a_large_call_gets_its_share_of_the_model_under_a_flood_of_small_calls():
    """Before (small calls always first) a large call got no turn while small ones waited:
    under a flood it ended at its timeout. Now, at large_share 0.5, it holds the model half
    of the time: one 0.25 s large batch per two 0.125 s small ones."""
    assert _kinds_of_turns(0.5) == "SLSSLSSLSSLSS"
    assert _kinds_of_turns(0.0) == "S" * 13  # the old order: the large call starves
    # large first: it takes every turn it is queued for (not the one after its own)
    assert _kinds_of_turns(1.0) == "LS" * 6 + "L"


def test_time_share_owes_only_while_both_kinds_wait():
    share = TimeShare(0.5)
    assert share.next(False, 2.0, small_waits=True, big_waits=False) is False
    assert share.owed == 0  # no large call waited: nothing saved up for a later one
    assert share.next(True, 5.0, small_waits=False, big_waits=True) is True
    assert share.owed == 0  # nobody else wanted the model: free
    assert share.next(False, 1.0, small_waits=True, big_waits=True) is True  # owed 1 s
    assert share.next(True, 3.0, small_waits=True, big_waits=True) is False  # overdrawn 2 s
    assert share.next(False, 1.0, small_waits=True, big_waits=True) is False
    assert share.next(False, 1.0, small_waits=True, big_waits=True) is False  # back to 0
    assert share.next(False, 1.0, small_waits=True, big_waits=True) is True
    assert share.next(False, 1.0, small_waits=False, big_waits=False) is None
    with pytest.raises(ValueError, match="large_share"):
        TimeShare(1.5)


def test_a_large_call_is_admitted_before_queued_small_ones_when_none_runs():
    """Threads are admitted small first; a flood of small calls kept every large one out."""
    sched = Scheduler(max_active=2, max_big=1, big_cost=10, trim_every_s=None)
    gates = {name: threading.Event() for name in ("first0", "first1")}

    def fn(items):
        if items[0] in gates:
            gates[items[0]].wait(10)
        return items

    async def main():
        loop = asyncio.get_running_loop()

        def call(name, cost):
            job = Job([name], cost, loop.create_future())
            return loop.create_task(sched.run(Call(fn, [name], [job], cost)))

        firsts = [call("first0", 1), call("first1", 1)]
        while sched.active < 2:
            await asyncio.sleep(0.001)
        rest = [call(f"small{i}", 1) for i in range(3)] + [call("big", 100)]
        await asyncio.sleep(0.01)
        assert len(sched.waiting[False]) == 3 and len(sched.waiting[True]) == 1
        gates["first0"].set()
        await firsts[0]  # its slot went to the large call, not to the first small one
        admitted = sched.active_big, len(sched.waiting[False])
        gates["first1"].set()
        await asyncio.gather(firsts[1], *rest)
        return admitted

    assert asyncio.run(main()) == (1, 3)
    sched.close()


def test_the_heap_is_trimmed_when_the_last_call_ends_and_at_most_every_interval():
    clock = [0.0]
    sched = Scheduler(trim_every_s=1.0, clock=lambda: clock[0])

    def fn(items):
        for _ in range(10):
            clock[0] += 0.25  # a batch takes 0.25 s
            sched.boundary()
        return items

    async def main():
        loop = asyncio.get_running_loop()
        job = Job([1], 1, loop.create_future())
        return await sched.run(Call(fn, [1], [job], 1))

    assert asyncio.run(main()) == [1]
    sched.close()
    if trim_memory():  # glibc
        assert sched.stats.trims == 2 + 1  # at 1.0 s and 2.0 s of its 2.5 s, then idle
    assert Scheduler(trim_every_s=None).stats.trims == 0


def test_the_server_caps_onednn_caches_unless_the_environment_says_otherwise(monkeypatch):
    """Every batch of the unpadded layout has a new token count: left at 1,024 entries, the
    caches of the oneDNN linears grew the server by hundreds of MB (benchmarks/RESULTS.md)."""
    for name in NATIVE_CACHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "256")
    bound_native_caches()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert os.environ["LRU_CACHE_CAPACITY"] == "256"


def test_calls_nobody_waits_for_stop_at_the_next_batch_boundary():
    sched = Scheduler()
    done = []

    def fn(items):
        for i in range(1000):
            time.sleep(0.001)
            done.append(i)
            sched.boundary()
        return items

    async def main():
        loop = asyncio.get_running_loop()
        job = Job([1], 1, loop.create_future())
        task = loop.create_task(sched.run(Call(fn, [1], [job], 1)))
        while len(done) < 3:
            await asyncio.sleep(0.001)
        job.future.cancel()
        with pytest.raises(Dropped):
            await task

    asyncio.run(main())
    sched.close()
    assert len(done) < 20 and sched.stats.dropped == 1


def test_queues_are_bounded_and_retire_when_idle():
    """Each option set's queue lives only while it has work; at most max_queues at once."""
    sched = Scheduler()
    peak = []

    def fn(items):
        time.sleep(0.01)
        return items

    async def main():
        loop = asyncio.get_running_loop()
        queues = Queues(sched, max_queues=2, max_batch=8, wait_ms=1, merge_cost=100)
        jobs = []
        for key in range(6):
            job = Job([key], 1, loop.create_future())
            queues.submit(key, fn, job)
            peak.append(len(queues.live))
            jobs.append(job.future)
        assert await asyncio.gather(*jobs) == [[k] for k in range(6)]
        await queues.drain()
        return queues

    queues = asyncio.run(main())
    sched.close()
    assert max(peak) == 2 and not queues.live and not queues.solo
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, MicroBatcher)]


def test_micro_batching_merges_concurrent_requests_and_isolates_failures():
    calls = []

    def fn(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item")
        return [x.upper() for x in items]

    sched = Scheduler()

    async def main():
        batcher = MicroBatcher(fn, sched, max_batch=64, wait_ms=50, max_cost=100)
        jobs = [batcher([f"t{i}"], cost=1) for i in range(10)] + [batcher(["bad"], cost=1)]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.drain()
        return out

    out = asyncio.run(main())
    sched.close()
    assert out[:10] == [[f"T{i}"] for i in range(10)]
    assert isinstance(out[10], ValueError)
    assert len(calls[0]) == 11  # all merged into one call first, then retried alone


def test_small_requests_are_answered_while_a_large_one_runs(mlm):
    """Before turns, /fill waited for the whole /score (one model call at a time, in order)."""
    app = create_app(pipes(mlm), max_chars=5000)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            big = asyncio.create_task(c.post("/score", json={"inputs": LONG}, timeout=60))
            while app.state.scheduler.stats.batches < 3:
                await asyncio.sleep(0.002)
            small = await c.post("/fill", json={"inputs": "a [MASK] b"}, timeout=60)
            running = not big.done()
            big = await big
        return small, running, big

    small, running, big = asyncio.run(main())
    assert small.status_code == 200 and len(small.json()) == 5
    assert running  # answered before the large request finished
    assert big.status_code == 200 and len(big.json()["tokens"]) == 400


def test_over_budget_requests_are_refused_before_any_work(mlm):
    p = pipes(mlm)
    cost = cost_of("score", p["score"], [LONG], {})
    assert cost == 402 * 64  # one pass per token, 64-token windows
    with TestClient(create_app(p, max_chars=5000, max_cost=cost - 1)) as c:
        r = c.post("/score", json={"inputs": LONG})
        assert r.status_code == 413
        assert f"costs {cost:,} token-passes" in r.json()["detail"]
        assert f"budget is {cost - 1:,}" in r.json()["detail"]
        assert c.app.state.scheduler.stats.batches == 0
        assert c.post("/score", json={"inputs": "a short one"}).status_code == 200


def test_a_request_past_its_timeout_gets_504_and_its_work_is_dropped(mlm):
    with TestClient(create_app(pipes(mlm), max_chars=8000, timeout_s=0.3)) as c:
        t0 = time.perf_counter()
        r = c.post("/score", json={"inputs": LONG * 3})
        assert r.status_code == 504 and "--timeout" in r.json()["detail"]
        assert time.perf_counter() - t0 < 5
        for _ in range(200):
            if c.get("/health").json()["load"]["dropped_calls"] == 1:
                break
            time.sleep(0.01)
        load = c.get("/health").json()["load"]
        assert load["dropped_calls"] == 1 and load["timed_out"] == 1
        assert load["batches"] < 1200  # stopped long before its 1,200 batches
        assert c.post("/fill", json={"inputs": "a [MASK]"}).status_code == 200


def _asgi(app, path: str, chunks, hang_up_after: float | None = None, host=b"localhost"):
    """Drive the ASGI app by hand: body chunks, then (optionally) a disconnect after a delay.

    Returns (status, body, chunks consumed, response headers).
    """
    sent, consumed = [], [0]
    items = list(chunks)

    async def receive():
        if consumed[0] < len(items):
            consumed[0] += 1
            return {"type": "http.request", "body": items[consumed[0] - 1],
                    "more_body": consumed[0] < len(items)}
        if hang_up_after is not None:
            await asyncio.sleep(hang_up_after)
        else:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"host", host),
                                              (b"content-type", b"application/json")],
             "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
             "root_path": "", "asgi": {"version": "3.0"}}

    async def main():
        await asyncio.wait_for(app(scope, receive, send), 30)

    asyncio.run(main())
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start and start["status"]), body, consumed[0], dict(start["headers"]) if start else {}


def test_a_chunked_body_is_cut_off_at_the_limit_as_it_streams(mlm):
    """No Content-Length: before, the whole body was read into memory whatever its size."""
    app = create_app(pipes(mlm), max_body_bytes=4000)
    status, body, consumed, headers = _asgi(app, "/fill", [b"x" * 1000] * 1000)
    assert status == 413 and "over the limit of 4000 bytes" in json.loads(body)["detail"]
    assert consumed == 5 and headers[b"connection"] == b"close"


def test_work_for_a_client_that_hung_up_is_dropped(mlm):
    app = create_app(pipes(mlm), max_chars=8000)
    state = app.state
    body = json.dumps({"inputs": LONG * 3}).encode()
    status, _, _, _ = _asgi(app, "/score", [body], hang_up_after=0.2)
    assert status == 499
    sched = state.scheduler
    for _ in range(300):
        if sched.stats.dropped == 1 and sched.active == 0:
            break
        time.sleep(0.01)
    assert sched.stats.dropped == 1 and sched.stats.batches < 1200
    assert state.load["disconnected"] == 1


def test_host_header_is_checked_against_allowed_hosts(mlm):
    app = create_app({"score": pipeline("score", mlm)}, allowed_hosts=["localhost", "::1"])
    with TestClient(app, base_url="http://localhost:8000") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "[::1]:8000"}).status_code == 200
        r = c.get("/health", headers={"host": "attacker.example:8000"})
        assert r.status_code == 400 and "--allowed-hosts" in r.json()["detail"]
        r = c.post("/score", json={"inputs": "x"}, headers={"host": "127.0.0.1.nip.io"})
        assert r.status_code == 400


def test_bad_content_length_and_too_many_in_flight_are_clear(mlm):
    app = create_app({"score": pipeline("score", mlm, batch_tokens=64)}, max_chars=5000,
                     max_pending=1)
    status, _, _, _ = _asgi(app, "/score", [b"{}"], host=b"t")
    assert status == 422
    with TestClient(app) as c:
        r = c.post("/score", content=b"{}", headers={"content-length": "12x",
                                                      "content-type": "application/json"})
        assert r.status_code == 400 and "Content-Length" in r.json()["detail"]
        out = {}

        def big():
            out["big"] = c.post("/score", json={"inputs": LONG})

        thread = threading.Thread(target=big)
        thread.start()
        while c.app.state.scheduler.stats.batches < 2:
            time.sleep(0.002)
        r = c.post("/score", json={"inputs": "one more"})
        thread.join()
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert out["big"].status_code == 200
