"""Fair sharing of one model among concurrent requests (the engine under `unmask serve`).

A request becomes a Job (its items, its cost, a future for its answer). Small jobs with the
same task and options are merged by a MicroBatcher into one pipeline call; a job too costly
to merge runs as a call of its own. Every call then goes through the Scheduler:

  - admission: at most `max_active` calls hold a worker thread, and calls costlier than
    `big_cost` at most `max_big` of them, so small calls always find a free thread; small
    calls are admitted first, except that a large call waiting while none runs goes next;
  - turns: one call computes at a time, and it hands the turn on at every batch boundary (the
    pipeline's `progress` callback, see Pipeline.run) to the next waiting call: small calls
    first, but while both kinds wait, large calls get `large_share` of the model's time
    (TimeShare): at the default 0.5 a small request waits for at most about one large batch
    per small call ahead of it, and a large request still advances under a flood of small
    ones instead of starving until its timeout. Large calls take turns round-robin;
  - dropping: at each batch boundary a call whose every job has gone (client disconnected,
    request timed out) or a server that is stopping raises Dropped;
  - memory: glibc keeps freed tensors' memory in its heaps, and batches of ever new shapes on
    8 threads fragment them, so RSS grew with every request while Python's own memory stayed
    flat (benchmarks/RESULTS.md). So the turn holder calls trim_memory() at most every
    `trim_every_s` seconds and whenever the last call ends.

Queues live only while they have work: a MicroBatcher retires (removes itself from its
Queues) once it is empty, and Queues holds at most `max_queues` of them; beyond that a job
runs unmerged.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class Dropped(Exception):
    """A call stopped at a batch boundary: nobody waits for its answer, or the server stops."""


@dataclass(eq=False)
class Job:
    """One request's share of the work: items (texts, pairs, ...), its cost, its answer.

    future resolves to the list of results (one per item); a caller that gives up cancels it,
    which is how the Scheduler learns that the work is no longer wanted.
    """

    items: list[Any]
    cost: int
    future: asyncio.Future

    @property
    def wanted(self) -> bool:
        return not self.future.done()


@dataclass(eq=False)
class Call:
    """One pipeline call fn(items) serving one or more jobs."""

    fn: Callable[[list[Any]], list[Any]]
    items: list[Any]
    jobs: list[Job]
    cost: int
    batches: int = 0

    @property
    def wanted(self) -> bool:
        return any(job.wanted for job in self.jobs)


class TimeShare:
    """Who gets the next turn: small calls first, large ones `large_share` of the time.

    While both kinds wait, a large call is owed large_share / (1 - large_share) seconds of
    the model for every second a small call holds it, and it pays back each second it holds
    it; it takes the next turn when it is owed more than nothing. Time nobody else wanted is
    free (a kind running alone is not charged), and nothing is saved up while no large call
    waits, so a large call returning after a pause cannot take a run of turns. large_share
    0: small calls always first (a large call waits until none is left); 1: large first.
    """

    def __init__(self, large_share: float = 0.5):
        if not 0 <= large_share <= 1:
            raise ValueError(f"large_share must be from 0 to 1, got {large_share}")
        self.large_share = large_share
        self.owed = 0.0  # seconds of model time owed to waiting large calls

    def next(self, held_big: bool, held_s: float, small_waits: bool,
             big_waits: bool) -> bool | None:
        """After a turn of held_s seconds (by a large call if held_big): True for a large
        call next, False for a small one, None when nobody waits."""
        share = self.large_share
        if held_big:
            if small_waits:  # the small calls waited through it
                self.owed -= held_s
        elif big_waits:
            self.owed += held_s * share / (1 - share) if share < 1 else 0.0
        else:
            self.owed = 0.0
        if not (small_waits or big_waits):
            return None
        if not big_waits:
            return False
        if not small_waits or share >= 1:
            return True
        return share > 0 and self.owed > 0


class Turns:
    """A baton for threads: one holder at a time, handed on first-come first-served within
    each kind (small, large), between the kinds by a TimeShare. clock: seconds (tests pass
    their own)."""

    def __init__(self, large_share: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.share = TimeShare(large_share)
        self.clock = clock
        self._lock = threading.Lock()
        self._busy = False
        self._held_big, self._since = False, 0.0
        self._waiting: dict[bool, deque[threading.Event]] = {False: deque(), True: deque()}
        self.seconds = {False: 0.0, True: 0.0}  # model time held by small / large calls

    def waiting(self) -> tuple[int, int]:
        """(small, large) calls waiting for a turn."""
        with self._lock:
            return len(self._waiting[False]), len(self._waiting[True])

    def acquire(self, big: bool = False) -> None:
        with self._lock:
            if not self._busy:
                self._busy = True
                self._start(big)
                return
            ready = threading.Event()
            self._waiting[big].append(ready)
        ready.wait()  # release() hands the turn straight to us: _busy stays True

    def _start(self, big: bool) -> None:
        self._held_big, self._since = big, self.clock()

    def release(self) -> None:
        with self._lock:
            held = max(self.clock() - self._since, 0.0)
            self.seconds[self._held_big] += held
            big = self.share.next(self._held_big, held, bool(self._waiting[False]),
                                  bool(self._waiting[True]))
            if big is None:
                self._busy = False
                return
            self._start(big)
            self._waiting[big].popleft().set()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim  # glibc only (not macOS, not musl)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_TRIM = _malloc_trim()


def trim_memory() -> bool:
    """Hand the heap's free memory back to the OS (glibc malloc_trim(0), a few ms); False
    where the C library has no malloc_trim."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


@dataclass
class Stats:
    """Counters for /health: calls run, batches computed (by large calls), calls dropped,
    memory trims."""

    calls: int = 0
    batches: int = 0
    big_batches: int = 0
    dropped: int = 0
    trims: int = 0


class Scheduler:
    """Run pipeline calls on worker threads, one batch at a time, taking turns (see above).

    Pipelines must report batch boundaries: set `pipeline.progress = scheduler.boundary`.
    large_share: the model's time large calls get while small ones wait too (TimeShare).
    trim_every_s: how often the turn holder may trim the heap (trim_memory; None: never).
    """

    def __init__(self, max_active: int = 8, max_big: int = 4, big_cost: int = 1 << 15,
                 large_share: float = 0.5, trim_every_s: float | None = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        if not 1 <= max_big <= max_active:
            raise ValueError(f"need 1 <= max_big <= max_active, got {max_big}, {max_active}")
        self.max_active, self.max_big, self.big_cost = max_active, max_big, big_cost
        self.executor = ThreadPoolExecutor(max_active, thread_name_prefix="unmask-model")
        self.turns = Turns(large_share, clock)
        self.trim_every_s, self.clock = trim_every_s, clock
        self.trimmed = clock()
        self.local = threading.local()
        self.active = self.active_big = 0
        self.waiting: dict[bool, deque[tuple[asyncio.Future, Call]]] = {False: deque(),
                                                                         True: deque()}
        self.closing = False
        self.stats = Stats()

    # --- on the worker threads -----------------------------------------------------------------

    def boundary(self, done: int = 0, total: int = 0) -> None:
        """Pipeline progress callback: hand the turn on, take it back, stop if unwanted."""
        call = getattr(self.local, "call", None)
        if call is None:  # the pipeline was called outside the scheduler
            return
        big = call.cost > self.big_cost
        call.batches += 1
        self.stats.batches += 1
        self.stats.big_batches += big
        self._tidy(idle=False)
        self.turns.release()
        self.turns.acquire(big)
        self._check(call)

    def _tidy(self, idle: bool) -> None:
        """Trim the heap (holding the turn: nothing computes meanwhile) when the last call
        ends, else at most every trim_every_s seconds."""
        if self.trim_every_s is None:
            return
        now = self.clock()
        if (idle or now - self.trimmed >= self.trim_every_s) and trim_memory():
            self.trimmed = now
            self.stats.trims += 1

    def _check(self, call: Call) -> None:
        if self.closing or not call.wanted:
            self.stats.dropped += 1  # counters for /health: a rare lost update is harmless
            raise Dropped("the server is shutting down" if self.closing
                          else "every request of this call has gone")

    def _in_thread(self, call: Call) -> list[Any]:
        self.local.call = call
        self.turns.acquire(call.cost > self.big_cost)
        try:
            self._check(call)
            return call.fn(call.items)
        finally:
            self.local.call = None
            # the last call in flight (active is counted on the event loop: a stale read
            # only trims once more or once less)
            self._tidy(idle=self.active <= 1 and self.turns.waiting() == (0, 0))
            self.turns.release()

    # --- on the event loop ---------------------------------------------------------------------

    async def run(self, call: Call) -> list[Any]:
        """fn(items) on a worker thread once admitted; raises Dropped if no longer wanted."""
        big = call.cost > self.big_cost
        await self._admit(big, call)
        try:
            self._check(call)
            self.stats.calls += 1
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, self._in_thread, call)
        finally:
            self._leave(big)

    def _free(self, big: bool) -> bool:
        return self.active < self.max_active and (not big or self.active_big < self.max_big)

    def _take(self, big: bool) -> None:
        self.active += 1
        self.active_big += big

    async def _admit(self, big: bool, call: Call) -> None:
        if self._free(big) and not self.waiting[big]:
            self._take(big)
            return
        slot = asyncio.get_running_loop().create_future()
        self.waiting[big].append((slot, call))
        try:
            await slot  # _wake() takes the slot for us before setting the result
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._leave(big)  # admitted just as we were cancelled: give the slot back
            else:
                self.waiting[big] = deque(w for w in self.waiting[big] if w[0] is not slot)
            raise

    def _leave(self, big: bool) -> None:
        self.active -= 1
        self.active_big -= big
        self._wake()

    def _wake(self) -> None:
        # small calls first (they finish quickly), but a large call waiting while none runs
        # goes before them, so a flood of small calls cannot keep every large one out
        if self.active_big == 0:
            self._admit_waiting(True, most=1)
        self._admit_waiting(False)
        self._admit_waiting(True)

    def _admit_waiting(self, big: bool, most: int | None = None) -> None:
        queue, admitted = self.waiting[big], 0
        while queue and self._free(big) and (most is None or admitted < most):
            slot, call = queue.popleft()
            if slot.done():
                continue
            if not call.wanted:  # nobody waits: never start it
                self.stats.dropped += 1
                slot.set_exception(Dropped("every request of this call has gone"))
                continue
            self._take(big)
            slot.set_result(None)
            admitted += 1

    def close(self) -> None:
        """Stop: running calls drop at their next batch boundary; wait for the threads."""
        self.closing = True
        self.executor.shutdown(wait=True, cancel_futures=True)


async def run_jobs(scheduler: Scheduler, fn: Callable[[list[Any]], list[Any]],
                   jobs: list[Job]) -> None:
    """Run jobs as one call and give each its slice of the results.

    When a merged call fails, each job is rerun alone, so one bad request fails only itself;
    the request at fault gets the pipeline's exception (anything that is not an Exception,
    such as a Rust panic, as a RuntimeError), so no request waits for an answer that never
    comes.
    """
    jobs = [job for job in jobs if job.wanted]
    if not jobs:
        return
    call = Call(fn, [x for job in jobs for x in job.items], jobs, sum(j.cost for j in jobs))
    try:
        results = await scheduler.run(call)
    except Dropped:
        return
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001  (handed to the request at fault)
        if not isinstance(err, Exception):  # e.g. a Rust panic from a tokenizer: never hang
            err = RuntimeError(f"{type(err).__name__}: {err}")
        if len(jobs) > 1:  # each alone, side by side (they take turns like any calls)
            await asyncio.gather(*(run_jobs(scheduler, fn, [job]) for job in jobs))
        elif jobs[0].wanted:
            jobs[0].future.set_exception(err)
        return
    start = 0
    for job in jobs:
        if job.wanted:
            job.future.set_result(results[start: start + len(job.items)])
        start += len(job.items)


class MicroBatcher:
    """Merge concurrent jobs of one task and option set into pipeline calls of fn(items).

    Jobs that arrive while a call runs, or within wait_ms of the first, run together, up to
    max_batch items and max_cost total cost. The worker task exists only while jobs wait:
    when the queue is empty it ends and calls on_idle().
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], scheduler: Scheduler,
                 max_batch: int, wait_ms: float, max_cost: int,
                 on_idle: Callable[[], None] | None = None):
        self.fn, self.scheduler = fn, scheduler
        self.max_batch, self.wait, self.max_cost = max_batch, wait_ms / 1000, max_cost
        self.on_idle = on_idle
        self.queue: deque[Job] = deque()
        self.arrived = asyncio.Event()
        self.worker: asyncio.Task | None = None

    def submit(self, job: Job) -> None:
        self.queue.append(job)
        self.arrived.set()
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def __call__(self, items: list[Any], cost: int = 0) -> list[Any]:
        """Submit items as one job and wait for its results."""
        job = Job(list(items), cost, asyncio.get_running_loop().create_future())
        self.submit(job)
        return await job.future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                jobs = [self.queue.popleft()]
                size, cost = len(jobs[0].items), jobs[0].cost
                deadline = loop.time() + self.wait
                while size < self.max_batch:
                    if not self.queue:
                        self.arrived.clear()
                        try:
                            await asyncio.wait_for(self.arrived.wait(), deadline - loop.time())
                        except TimeoutError:
                            break
                        continue
                    nxt = self.queue[0]
                    if size + len(nxt.items) > self.max_batch or cost + nxt.cost > self.max_cost:
                        break
                    jobs.append(self.queue.popleft())
                    size, cost = size + len(nxt.items), cost + nxt.cost
                await run_jobs(self.scheduler, self.fn, jobs)
        finally:
            # no await between the empty queue and this: a job submitted later starts a new worker
            self.worker = None
            if self.on_idle is not None:
                self.on_idle()

    async def drain(self) -> None:
        """Wait until every queued job has run (graceful shutdown)."""
        while self.worker is not None:
            await asyncio.sleep(0.01)


class Queues:
    """At most max_queues live MicroBatchers, one per key ((task, options)); idle ones retire.

    submit() merges a job into its key's queue when it is cheap enough (cost <= merge_cost)
    and a queue is free, else runs it as a call of its own.
    """

    def __init__(self, scheduler: Scheduler, max_queues: int, max_batch: int, wait_ms: float,
                 merge_cost: int):
        self.scheduler, self.max_queues = scheduler, max_queues
        self.max_batch, self.wait_ms, self.merge_cost = max_batch, wait_ms, merge_cost
        self.live: dict[Hashable, MicroBatcher] = {}
        self.solo: set[asyncio.Task] = set()

    def submit(self, key: Hashable, fn: Callable[[list[Any]], list[Any]], job: Job) -> None:
        batcher = self.live.get(key)
        if job.cost <= self.merge_cost and (batcher is not None
                                            or len(self.live) < self.max_queues):
            if batcher is None:
                batcher = MicroBatcher(fn, self.scheduler, self.max_batch, self.wait_ms,
                                       self.merge_cost, on_idle=lambda: self._retire(key))
                self.live[key] = batcher
            batcher.submit(job)
            return
        task = asyncio.get_running_loop().create_task(run_jobs(self.scheduler, fn, [job]))
        self.solo.add(task)
        task.add_done_callback(self.solo.discard)

    def _retire(self, key: Hashable) -> None:
        batcher = self.live.get(key)
        if batcher is not None and batcher.worker is None and not batcher.queue:
            del self.live[key]

    async def drain(self) -> None:
        """Wait until every queued or running job has finished."""
        while self.live or self.solo:
            await asyncio.sleep(0.01)


__all__ = ["Call", "Dropped", "Job", "MicroBatcher", "Queues", "Scheduler", "TimeShare", "Turns",
           "run_jobs", "trim_memory"]
