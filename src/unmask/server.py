"""An HTTP JSON API over the pipelines (FastAPI + uvicorn): `unmask serve`.

    POST /fill /score /embed /similarity /classify /zero-shot /ner /answer   (one per pipeline
         loaded; bodies and answers as the Python pipelines take and return them)
    GET  /health      {"status": "ok", "tasks": [...], "load": {...}}
    GET  /docs        OpenAPI documentation (the schema is at /openapi.json)

What the server promises a client, hostile or not: a correct answer or one of the 4xx / 503 /
504 errors below with a one-line "detail", never a traceback, and bounded memory and time.

At the door (an ASGI middleware, before any route):
  400  a Host header not in `allowed_hosts` (DNS rebinding: a web page must not reach a server
       on 127.0.0.1 through a name it controls), or an unreadable Content-Length;
  413  a body over `max_body_bytes`, counted while it streams in (chunked uploads too): reading
       stops at the limit and the connection is closed;
  408  a body that has not fully arrived within `timeout_s`.
In the routes:
  422  a malformed body (which field, and why); a text with lone surrogates (not UTF-8);
  413  more than `max_texts` texts, a text over `max_chars` characters, or a request whose
       cost (see `cost_of`: tokens x forward passes, plus tokens decoded into the answer) is
       over `max_cost`; the message names the cost and the budget;
  400  input the pipeline refuses (no mask token, empty text), with the pipeline's message;
  404  a task this server has no model for;
  503  more than `max_pending` requests already in flight (retry later);
  504  no answer within `timeout_s` of the body's arrival (the work is dropped).

Scheduling (unmask.scheduling): concurrent small requests for the same task and options are
merged into one pipeline call (up to `max_batch` texts, waiting up to `wait_ms`); calls take
turns on the model at every batch boundary, large ones getting `large_share` of the time while
small ones wait too; work for a client that hung up or timed out is dropped at the next
boundary; at most `max_queues` queues live at once. `unmask serve` caps torch's oneDNN caches
(bound_native_caches) before loading the models. Shutdown is graceful: uvicorn stops
accepting, in-flight requests finish (30 s), then unfinished work is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import math
import os
import string
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, field_validator

from unmask.pipelines import PIPELINES, Pipeline, pipeline
from unmask.pipelines.base import check_texts
from unmask.scheduling import Job, Queues, Scheduler

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CONFIG_ENV = "UNMASK_SERVE_CONFIG"  # how `--workers N` hands the settings to each process
# oneDNN's and ideep's (torch's oneDNN layer) caches keep up to 1,024 entries each by default,
# and the unpadded layout gives every batch a new token count, so they fill up to hundreds of
# MB (benchmarks/RESULTS.md). 16 keeps the reuse within a batch (the same shapes in every layer).
NATIVE_CACHES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "16"}


def bound_native_caches() -> None:
    """Cap torch's oneDNN caches (NATIVE_CACHES) unless the environment already sets them.

    They read the environment when first used: call this before the process runs a model.
    """
    for name, value in NATIVE_CACHES.items():
        os.environ.setdefault(name, value)


def _utf8(text: str) -> str:
    """Refuse strings that cannot be UTF-8 (JSON "\\ud800" escapes give lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text is not valid UTF-8 (a lone surrogate at character "
                         f"{err.start}); send Unicode text") from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]
Texts = Text | list[Text]


# --- request bodies ----------------------------------------------------------------------------

class FillRequest(BaseModel):
    inputs: Texts = Field(description="text(s) with the mask token, e.g. [MASK]")
    top_k: int = Field(5, ge=1, le=100)
    targets: list[Text] | None = Field(None, max_length=1000,
                                       description="only score these words (at most 1,000)")
    joint: bool = Field(False, description="fill all masks together (beam search)")
    beam_size: int = Field(5, ge=1, le=32)


class TextsRequest(BaseModel):
    inputs: Texts


class SimilarityRequest(BaseModel):
    a: Texts
    b: Texts | None = Field(None, description="None: similarities among a")


class ClassifyRequest(BaseModel):
    inputs: Texts
    top_k: int | None = Field(1, ge=1, le=1000)


class ZeroShotRequest(BaseModel):
    inputs: Texts
    candidate_labels: list[Text] = Field(min_length=1)
    hypothesis_template: Text = Field("This example is {}.", max_length=1000,
                                      description="one {} where the label goes")
    multi_label: bool = False

    @field_validator("hypothesis_template")
    @classmethod
    def one_placeholder(cls, template: str) -> str:
        """Only a bare {} is allowed: str.format fields like {0.__class__} or {:>999999999}
        would leak internals or allocate gigabytes."""
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
        if fields != [("", "", None)]:
            raise ValueError("hypothesis_template needs exactly one {} (and no other {...} "
                             "fields; write {{ and }} for literal braces)")
        return template


class NerRequest(BaseModel):
    inputs: Texts
    aggregation: str = Field("simple", pattern="^(none|simple|first|average|max)$")


class AnswerRequest(BaseModel):
    question: Texts
    context: Texts
    top_k: int = Field(1, ge=1, le=20)


# --- what a request costs ----------------------------------------------------------------------
# Cost = tokens through the encoder summed over forward passes (pseudo-log-likelihood: one pass
# per token), plus tokens decoded into the answer (fill-mask writes a sentence per candidate).
# Computed from token counts before any work starts; an upper estimate where the pipeline
# windows a long text.

def _ids(pipe: Pipeline, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return pipe.tokenizer.encode_batch(list(texts), truncation=False, padding=False).input_ids


def _windows(n: int, window: int, overlap: int, specials: int = 2) -> int:
    """Rows a text of n tokens (specials included) takes in windows of `window` tokens."""
    room = max(window - specials, 1)
    content = max(n - specials, 0)
    if content <= room:
        return 1
    step = max(room - min(overlap, room - 1), 1)
    return 1 + -(-(content - room) // step)


def _encoded(pipe: Pipeline, texts: Sequence[str], overlap: int) -> int:
    """Cost of running texts whole, or in overlapping windows when longer than the model."""
    L = pipe.max_length
    return sum(_windows(n, L, overlap) * min(n, L) for n in map(len, _ids(pipe, texts)))


def cost_fill(pipe: Pipeline, texts: list[str], top_k: int, joint: bool, beam_size: int,
              **_: Any) -> int:
    L, mask = pipe.max_length, pipe.tokenizer.mask_token_id
    total = 0
    for i, ids in enumerate(_ids(pipe, texts)):
        n, m = len(ids), ids.count(mask)
        if not m:
            raise ValueError(f"input {i} has no mask token: write "
                             f"{pipe.tokenizer.special_tokens['mask']} where a word should be "
                             f"predicted ({texts[i][:60]!r})")
        if joint:
            width = max(beam_size, top_k)
            total += m * width * min(n, L) + width * n * min(n, L) + top_k * n
        else:
            total += (n if n <= L else m * L) + m * top_k * n
    return total


def cost_score(pipe: Pipeline, texts: list[str]) -> int:
    L = pipe.max_length
    return sum(len(ids) * min(len(ids), L) for ids in _ids(pipe, texts))


def cost_zero_shot(pipe: Pipeline, texts: list[str], candidate_labels: list[str],
                   hypothesis_template: str, **_: Any) -> int:
    L = pipe.max_length
    hyps = [len(ids) for ids in _ids(pipe, [hypothesis_template.format(x)
                                            for x in candidate_labels])]
    for label, h in zip(candidate_labels, hyps):
        if L - h - 1 <= pipe.stride:  # the tokenizer would panic on the windows' overlap
            raise ValueError(f"the hypothesis for label {label[:40]!r} is {h} tokens: it leaves "
                             f"no room for text in the model's {L}-token windows (overlap "
                             f"{pipe.stride}); shorten the label or the template")
    # the pair is [CLS] text [SEP] hypothesis [SEP]; only the text is cut
    return sum(_windows(t + h - 1, L, pipe.stride, specials=h + 1) * min(t + h - 1, L)
               for t in map(len, _ids(pipe, texts)) for h in hyps)


def cost_answer(pipe: Pipeline, pairs: list[tuple[str, str]]) -> int:
    L = min(384, pipe.max_length)  # Answer's default max_length
    questions = _ids(pipe, [q for q, _ in pairs])
    contexts = _ids(pipe, [c for _, c in pairs])
    total = 0
    for q, c in zip(questions, contexts):
        n = len(q) + len(c) - 1
        room = L - len(q) - 1  # under 2: no room for context, the pipeline refuses it (400)
        total += n if room < 2 else _windows(n, L, 128, specials=len(q) + 1) * min(n, L)
    return total


def cost_of(task: str, pipe: Pipeline, items: list, options: dict) -> int:
    """The cost of a request (see above): items as the route hands them to the pipeline.

    Also refuses (ValueError) the input every pipeline refuses, empty texts, and texts
    without a mask token for fill-mask, so that they never join a merged call: a merged call
    that fails is rerun request by request.
    """
    if task == "similarity":
        texts = [t for a, b in items for t in a + (b or [])]
    elif task == "answer":
        texts = [t for pair in items for t in pair]
    else:
        texts = items
    if texts:  # none: the pipeline says so
        check_texts(texts)
    if task == "fill-mask":
        return cost_fill(pipe, items, **options)
    if task == "score":
        return cost_score(pipe, items)
    if task in ("embed", "similarity"):
        return _encoded(pipe, texts, pipe.max_length // 4)
    if task in ("classify", "ner"):
        return _encoded(pipe, items, pipe.stride)
    if task == "zero-shot":
        return cost_zero_shot(pipe, items, **options)
    if task == "answer":
        return cost_answer(pipe, items)
    raise ValueError(f"no cost function for task {task!r}")


# --- answers -----------------------------------------------------------------------------------

def _finite(x: Any) -> Any:
    """x with every NaN / infinity replaced by None (JSON has no such numbers)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


class SafeJSON(JSONResponse):
    """JSON that always renders: non-finite floats become null, odd characters are escaped."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:  # NaN / inf (allow_nan=False), or unencodable text
            return json.dumps(_finite(content), ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode()


def _short(value: Any) -> Any:
    """A validation error's input, safe to echo: short plain values as they are, else a repr."""
    if value is None or isinstance(value, (bool, int)) and abs(value) < 1 << 53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = value if isinstance(value, str) else repr(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = ascii(text)
    return text if len(text) <= 100 else text[:100] + "..."


async def _send_json(send, status: int, detail: str, close: bool = False) -> None:
    """A whole JSON error response straight over ASGI."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # uvicorn then closes the connection instead of reading the rest of the body
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _host_of(header: str) -> str:
    """The host name of a Host header, without port or IPv6 brackets, lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1: header.find("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Door:
    """ASGI middleware: the Host check, then the body read in full under the size and time
    limits (counted as it streams, whatever Content-Length says), then the app."""

    def __init__(self, app, max_body_bytes: int, allowed_hosts: Sequence[str] | None,
                 body_timeout: float):
        self.app, self.max_body_bytes, self.body_timeout = app, max_body_bytes, body_timeout
        hosts = None if allowed_hosts is None or "*" in allowed_hosts else allowed_hosts
        self.allowed = None if hosts is None else {h.strip("[]").lower() for h in hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.allowed is not None:
            host = _host_of(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                return await _send_json(send, 400, f"host {host!r} is not served here (allowed: "
                                        f"{', '.join(sorted(self.allowed))}); start the server "
                                        "with --allowed-hosts to add it")
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _send_json(send, 400, "Content-Length is not a number", close=True)
            if int(declared) > self.max_body_bytes:
                return await _send_json(send, 413, self._too_big(f"{int(declared)} bytes"),
                                        close=True)
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return await _send_json(send, 413, self._too_big(f"over {size} bytes"),
                                                close=True)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await _send_json(send, 408, f"the request body did not arrive within "
                                    f"{self.body_timeout:g} s", close=True)
        first = iter([{"type": "http.request", "body": b"".join(chunks), "more_body": False}])

        async def replay():
            return next(first, None) or await receive()  # after the body: waits to disconnect

        await self.app(scope, replay, send)

    def _too_big(self, size: str) -> str:
        return (f"request body of {size} is over the limit of {self.max_body_bytes} bytes: "
                "send fewer or shorter texts")


# --- the app -----------------------------------------------------------------------------------

def load_pipelines(model: str | None = None, tasks: Sequence[str] | None = None,
                   per_task: dict[str, str] | None = None, **options: Any) -> dict[str, Pipeline]:
    """Pipelines for a server: per_task {task: checkpoint}, plus every task in `tasks` (default:
    all) that `model` can serve (a task whose head the checkpoint lacks is skipped; when none
    can be served, the error says why each failed)."""
    out = {task: pipeline(task, path, **options) for task, path in (per_task or {}).items()}
    failed: dict[str, str] = {}
    if model is not None:
        for task in tasks or PIPELINES:
            if task in out:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[task] = pipeline(task, model, **options)
            except (ValueError, TypeError, OSError) as err:
                if tasks:  # asked for by name: say why it cannot be served
                    raise ValueError(f"cannot serve {task} with {model}: {err}") from None
                failed[task] = str(err)
    if not out:
        if failed:
            reasons = {}
            for task, why in failed.items():
                reasons.setdefault(why, []).append(task)
            raise ValueError(f"no pipeline to serve from {model}: " + "; ".join(
                f"{', '.join(ts)}: {why}" for why, ts in reasons.items()))
        raise ValueError("no pipeline to serve: give a model (and tasks) or per-task checkpoints")
    return out


def _key(task: str, options: dict) -> tuple[str, str]:
    return task, hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()


async def _gone(request: Request) -> None:
    """Returns when the client has disconnected (or the response is complete)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(pipelines: dict[str, Pipeline], *, max_texts: int = 64, max_chars: int = 20000,
               max_body_bytes: int = 1 << 20, max_batch: int = 64, wait_ms: float = 2.0,
               max_cost: int = 1 << 19, timeout_s: float = 60.0, max_pending: int = 256,
               max_queues: int = 64, allowed_hosts: Sequence[str] | None = None,
               large_share: float = 0.5) -> FastAPI:
    """A FastAPI app serving `pipelines` ({task: Pipeline}); limits and scheduling as above.

    allowed_hosts: Host header names served (None or "*": any). large_share: the model's
    time large calls get while small ones wait too (0: small calls always first). Each
    pipeline's `progress` is set to the scheduler's batch-boundary callback (it takes turns
    there).
    """
    biggest = max(p.batch_tokens for p in pipelines.values())
    scheduler = Scheduler(max_active=8, max_big=4, big_cost=4 * biggest, large_share=large_share)
    queues = Queues(scheduler, max_queues, max_batch, wait_ms, merge_cost=4 * biggest)
    costing = ThreadPoolExecutor(1, thread_name_prefix="unmask-cost")  # tokenizing for costs
    for pipe in pipelines.values():
        pipe.progress = scheduler.boundary
    state = {"pending": 0, "timed_out": 0, "disconnected": 0, "over_budget": 0, "busy": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        scheduler.closing = True  # in-flight requests have had their grace period
        await queues.drain()
        scheduler.close()
        costing.shutdown(wait=True)

    app = FastAPI(title="unmask", version="1", lifespan=lifespan, default_response_class=SafeJSON,
                  description="Masked language model pipelines over HTTP.")
    app.state.scheduler, app.state.queues, app.state.load = scheduler, queues, state

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> SafeJSON:
        errors = [{"loc": [x if isinstance(x, (int, str)) else str(x) for x in e.get("loc", ())],
                   "msg": str(e.get("msg", "")), "type": str(e.get("type", "")),
                   "input": _short(e.get("input"))} for e in exc.errors()]
        return SafeJSON(status_code=422, content={"detail": errors})

    @app.get("/health")
    async def health() -> dict:
        stats, held = scheduler.stats, scheduler.turns.seconds
        load = {**state, "active_calls": scheduler.active, "queues": len(queues.live),
                "calls": stats.calls, "batches": stats.batches,
                "large_batches": stats.big_batches, "dropped_calls": stats.dropped,
                "model_s": {"small": round(held[False], 1), "large": round(held[True], 1)},
                "memory_trims": stats.trims}
        return {"status": "ok", "tasks": sorted(pipelines), "pid": os.getpid(), "load": load}

    def check(texts: Sequence[str]) -> None:
        if len(texts) > max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is "
                                     f"{max_texts}: split the request")
        for i, t in enumerate(texts):
            if len(t) > max_chars:
                raise HTTPException(413, f"text {i} has {len(t)} characters; the limit is "
                                         f"{max_chars}")

    async def run(request: Request, task: str, items: list, options: dict,
                  fn: Callable[[Pipeline, list], list]) -> list:
        """Cost check, then queue, then wait for the answer, the deadline or the client leaving."""
        if task not in pipelines:
            raise HTTPException(404, f"this server has no {task} model; it serves "
                                     f"{', '.join(sorted(pipelines))}")
        if state["pending"] >= max_pending:
            state["busy"] += 1
            raise HTTPException(503, f"the server is busy ({max_pending} requests in flight); "
                                     "retry later", headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pipe = pipelines[task]
        state["pending"] += 1
        try:
            try:
                cost = await loop.run_in_executor(costing, cost_of, task, pipe, items, options)
            except (ValueError, TypeError) as err:
                raise HTTPException(400, str(err)) from None
            if cost > max_cost:
                state["over_budget"] += 1
                raise HTTPException(413, f"this request costs {cost:,} token-passes (tokens x "
                                         f"forward passes); the budget is {max_cost:,} per "
                                         "request (--max-cost): send fewer or shorter texts")
            job = Job(items, cost, loop.create_future())
            queues.submit(_key(task, options), lambda xs: fn(pipe, xs), job)
            gone = loop.create_task(_gone(request))
            try:
                await asyncio.wait({job.future, gone}, timeout=max(deadline - loop.time(), 0),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
            if not job.future.done():
                job.future.cancel()  # the scheduler drops the work at the next batch boundary
                if gone.done() and not gone.cancelled():
                    state["disconnected"] += 1
                    raise HTTPException(499, "the client closed the request")
                state["timed_out"] += 1
                raise HTTPException(504, f"no answer within {timeout_s:g} s (--timeout); the "
                                         "work was dropped: send a smaller request or retry")
            try:
                return job.future.result()
            except (ValueError, TypeError, KeyError) as err:
                raise HTTPException(400, str(err)) from None
        finally:
            state["pending"] -= 1

    def texts_of(inputs: Texts) -> tuple[list[str], bool]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        check(texts)
        return texts, isinstance(inputs, str)

    async def per_text(request: Request, task: str, req: BaseModel,
                       call: Callable | None = None) -> Any:
        """The routes with `inputs` texts: the body's other fields are the pipeline's options."""
        options = req.model_dump(exclude={"inputs"})
        texts, single = texts_of(req.inputs)
        out = await run(request, task, texts, options, call or (lambda p, xs: p(xs, **options)))
        return out[0] if single else out

    @app.post("/fill")
    async def fill(req: FillRequest, request: Request) -> Any:
        return await per_text(request, "fill-mask", req)

    @app.post("/score")
    async def score(req: TextsRequest, request: Request) -> Any:
        return await per_text(request, "score", req)

    @app.post("/embed")
    async def embed(req: TextsRequest, request: Request) -> Any:
        return await per_text(request, "embed", req, lambda p, xs: p(xs).tolist())

    @app.post("/similarity")
    async def similarity(req: SimilarityRequest, request: Request) -> Any:
        a, _ = texts_of(req.a)
        b = None if req.b is None else texts_of(req.b)[0]
        check(a + (b or []))
        single = isinstance(req.a, str) and isinstance(req.b, str)
        out = await run(request, "similarity", [(a, b)], {},
                        lambda p, xs: [p(x, y).tolist() for x, y in xs])
        return out[0][0][0] if single else out[0]

    @app.post("/classify")
    async def classify(req: ClassifyRequest, request: Request) -> Any:
        return await per_text(request, "classify", req)

    @app.post("/zero-shot")
    async def zero_shot(req: ZeroShotRequest, request: Request) -> Any:
        return await per_text(request, "zero-shot", req)

    @app.post("/ner")
    async def ner(req: NerRequest, request: Request) -> Any:
        return await per_text(request, "ner", req)

    @app.post("/answer")
    async def answer(req: AnswerRequest, request: Request) -> Any:
        questions, single = texts_of(req.question)
        contexts, _ = texts_of(req.context)
        if len(contexts) == 1:
            contexts = contexts * len(questions)
        if len(contexts) != len(questions):
            raise HTTPException(422, f"got {len(questions)} questions and {len(contexts)} "
                                     "contexts: give one context, or one per question")
        out = await run(request, "answer", list(zip(questions, contexts)), {"top_k": req.top_k},
                        lambda p, xs: p([q for q, _ in xs], [c for _, c in xs], top_k=req.top_k))
        return out[0] if single else out

    app.add_middleware(Door, max_body_bytes=max_body_bytes, allowed_hosts=allowed_hosts,
                       body_timeout=timeout_s)
    return app


def default_hosts(host: str) -> list[str]:
    """Host names served by default: the local names when bound to a loopback address, else any."""
    return list(LOCAL_HOSTS) if host.strip("[]").lower() in LOCAL_HOSTS else ["*"]


def worker_app() -> Any:
    """App factory for each `--workers N` process: its own pipelines, its share of the cores.

    Reads the settings serve() put in the environment variable UNMASK_SERVE_CONFIG (JSON).
    """
    import torch

    bound_native_caches()
    config = json.loads(os.environ[CONFIG_ENV])
    torch.set_num_threads(config["threads"])
    pipes = load_pipelines(config["model"], config["tasks"], config["per_task"],
                           **config["load"])
    return create_app(pipes, **config["app"])


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
    """Run app with uvicorn until SIGINT / SIGTERM (then finish in-flight requests)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30,
                **uvicorn_options)


def serve_workers(workers: int, host: str, port: int, model: str | None,
                  tasks: Sequence[str] | None, per_task: dict[str, str], load: dict,
                  app: dict, threads: int | None = None) -> None:
    """Run `workers` uvicorn processes on one port, each loading its own pipelines and using
    threads (default: this machine's cores // workers) for torch."""
    bound_native_caches()  # the worker processes inherit the environment
    # Load once here, so a bad checkpoint fails with one clear line instead of in every worker.
    load_pipelines(model, tasks, per_task, **load)
    gc.collect()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    config = {"model": model, "tasks": tasks, "per_task": per_task, "load": load, "app": app,
              "threads": threads or max(1, (cores or 1) // workers)}
    os.environ[CONFIG_ENV] = json.dumps(config)
    serve("unmask.server:worker_app", host, port, factory=True, workers=workers)


__all__ = ["Door", "bound_native_caches", "cost_of", "create_app", "default_hosts",
           "load_pipelines", "serve", "serve_workers", "worker_app"]
