"""An HTTP JSON API over the pipelines (FastAPI + uvicorn): `unmask serve`.

    POST /fill /score /embed /similarity /classify /zero-shot /ner /answer   (one per pipeline
         loaded; bodies and answers as the Python pipelines take and return them)
    GET  /health      {"status": "ok", "tasks": [...]}
    GET  /docs        OpenAPI documentation (the schema is at /openapi.json)

Micro-batching: concurrent requests for the same task and options wait up to `wait_ms` in a
queue and run as one pipeline call (up to `max_batch` texts), which the pipeline then sorts
and batches by length; results are split back per request. Model calls run one at a time on a
worker thread, so the event loop keeps accepting requests meanwhile.
Limits: a body over `max_body_bytes`, more than `max_texts` texts, or a text over `max_chars`
characters gets 413; a malformed body 422 (FastAPI's validation message); input a pipeline
refuses (no mask token, empty text) 400 with the pipeline's message.
Shutdown is graceful: uvicorn stops accepting, in-flight requests finish, queued batches run.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from unmask.pipelines import PIPELINES, Pipeline, pipeline

Texts = str | list[str]


# --- request bodies ----------------------------------------------------------------------------

class FillRequest(BaseModel):
    inputs: Texts = Field(description="text(s) with the mask token, e.g. [MASK]")
    top_k: int = Field(5, ge=1, le=100)
    targets: list[str] | None = Field(None, description="only score these words")
    joint: bool = Field(False, description="fill all masks together (beam search)")
    beam_size: int = Field(5, ge=1, le=32)


class TextsRequest(BaseModel):
    inputs: Texts


class SimilarityRequest(BaseModel):
    a: Texts
    b: Texts | None = Field(None, description="None: similarities among a")


class ClassifyRequest(BaseModel):
    inputs: Texts
    top_k: int | None = Field(1, ge=1)


class ZeroShotRequest(BaseModel):
    inputs: Texts
    candidate_labels: list[str] = Field(min_length=1)
    hypothesis_template: str = "This example is {}."
    multi_label: bool = False


class NerRequest(BaseModel):
    inputs: Texts
    aggregation: str = Field("simple", pattern="^(none|simple|first|average|max)$")


class AnswerRequest(BaseModel):
    question: Texts
    context: Texts
    top_k: int = Field(1, ge=1, le=20)


# --- micro-batching ----------------------------------------------------------------------------

@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future
    results: list[Any] = field(default_factory=list)


class MicroBatcher:
    """Run calls of fn(items) -> results (one per item), merging concurrent requests.

    Jobs that arrive while one batch runs, or within wait_ms of the first, are run together,
    up to max_batch items. fn runs on `executor` (one model call at a time).
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], executor: ThreadPoolExecutor,
                 max_batch: int, wait_ms: float):
        self.fn, self.executor = fn, executor
        self.max_batch, self.wait = max_batch, wait_ms / 1000
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    async def __call__(self, items: list[Any]) -> list[Any]:
        if self.worker is None:
            self.worker = asyncio.create_task(self._work())
        job = _Job(items, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].items)
            deadline = loop.time() + self.wait
            while size < self.max_batch:
                try:
                    job = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.items)
            await self._run(jobs)

    async def _run(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        items = [x for job in jobs for x in job.items]
        try:
            results = await loop.run_in_executor(self.executor, self.fn, items)
        except Exception as err:  # noqa: BLE001  (the request at fault gets the error)
            if len(jobs) > 1:  # one bad request must not fail the others: run them alone
                for job in jobs:
                    await self._run([job])
                return
            if not jobs[0].future.done():
                jobs[0].future.set_exception(err)
            return
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(results[start: start + len(job.items)])
            start += len(job.items)

    async def drain(self) -> None:
        """Let queued jobs finish, then stop the worker (graceful shutdown)."""
        while not self.queue.empty():
            await asyncio.sleep(0.01)
        if self.worker is not None:
            self.worker.cancel()


# --- the app -----------------------------------------------------------------------------------

def load_pipelines(model: str | None = None, tasks: Sequence[str] | None = None,
                   per_task: dict[str, str] | None = None, **options: Any) -> dict[str, Pipeline]:
    """Pipelines for a server: per_task {task: checkpoint}, plus every task in `tasks` (default:
    all) that `model` can serve (a task whose head the checkpoint lacks is skipped)."""
    out = {task: pipeline(task, path, **options) for task, path in (per_task or {}).items()}
    if model is not None:
        for task in tasks or PIPELINES:
            if task in out:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[task] = pipeline(task, model, **options)
            except (ValueError, TypeError) as err:
                if tasks:  # asked for by name: say why it cannot be served
                    raise ValueError(f"cannot serve {task} with {model}: {err}") from None
    if not out:
        raise ValueError("no pipeline to serve: give a model (and tasks) or per-task checkpoints")
    return out


def create_app(pipelines: dict[str, Pipeline], *, max_texts: int = 64, max_chars: int = 20000,
               max_body_bytes: int = 1 << 20, max_batch: int = 64,
               wait_ms: float = 2.0) -> FastAPI:
    """A FastAPI app serving `pipelines` ({task: Pipeline}); limits and batching as above."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unmask-model")
    batchers: dict[tuple[str, str], MicroBatcher] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for b in batchers.values():
            await b.drain()
        executor.shutdown(wait=True)

    app = FastAPI(title="unmask", version="1", lifespan=lifespan,
                  description="Masked language model pipelines over HTTP.")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and int(size) > max_body_bytes:
            return JSONResponse(status_code=413, content={
                "detail": f"request body of {size} bytes is over the limit of {max_body_bytes}"})
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "tasks": sorted(pipelines)}

    def check(texts: Sequence[str]) -> None:
        if len(texts) > max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is "
                                     f"{max_texts}: split the request")
        for i, t in enumerate(texts):
            if len(t) > max_chars:
                raise HTTPException(413, f"text {i} has {len(t)} characters; the limit is "
                                         f"{max_chars}")

    async def run(task: str, items: list, options: dict, fn: Callable[[Pipeline, list], list]):
        if task not in pipelines:
            raise HTTPException(404, f"this server has no {task} model; it serves "
                                     f"{', '.join(sorted(pipelines))}")
        key = (task, json.dumps(options, sort_keys=True))
        if key not in batchers:
            pipe = pipelines[task]
            batchers[key] = MicroBatcher(lambda xs: fn(pipe, xs), executor, max_batch, wait_ms)
        try:
            return await batchers[key](items)
        except (ValueError, TypeError, KeyError) as err:
            raise HTTPException(400, str(err)) from None

    def texts_of(inputs: Texts) -> tuple[list[str], bool]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        check(texts)
        return texts, isinstance(inputs, str)

    async def per_text(task: str, inputs: Texts, options: dict, call: Callable) -> Any:
        texts, single = texts_of(inputs)
        out = await run(task, texts, options, lambda pipe, xs: call(pipe, xs))
        return out[0] if single else out

    @app.post("/fill")
    async def fill(req: FillRequest) -> Any:
        opts = req.model_dump(exclude={"inputs"})
        return await per_text("fill-mask", req.inputs, opts, lambda p, xs: p(xs, **opts))

    @app.post("/score")
    async def score(req: TextsRequest) -> Any:
        return await per_text("score", req.inputs, {}, lambda p, xs: p(xs))

    @app.post("/embed")
    async def embed(req: TextsRequest) -> Any:
        return await per_text("embed", req.inputs, {}, lambda p, xs: p(xs).tolist())

    @app.post("/similarity")
    async def similarity(req: SimilarityRequest) -> Any:
        a, _ = texts_of(req.a)
        b = None if req.b is None else texts_of(req.b)[0]
        check(a + (b or []))
        single = isinstance(req.a, str) and isinstance(req.b, str)
        out = await run("similarity", [(a, b)], {},
                        lambda p, xs: [p(x, y).tolist() for x, y in xs])
        return out[0][0][0] if single else out[0]

    @app.post("/classify")
    async def classify(req: ClassifyRequest) -> Any:
        return await per_text("classify", req.inputs, {"top_k": req.top_k},
                              lambda p, xs: p(xs, top_k=req.top_k))

    @app.post("/zero-shot")
    async def zero_shot(req: ZeroShotRequest) -> Any:
        opts = req.model_dump(exclude={"inputs"})
        return await per_text("zero-shot", req.inputs, opts, lambda p, xs: p(xs, **opts))

    @app.post("/ner")
    async def ner(req: NerRequest) -> Any:
        return await per_text("ner", req.inputs, {"aggregation": req.aggregation},
                              lambda p, xs: p(xs, aggregation=req.aggregation))

    @app.post("/answer")
    async def answer(req: AnswerRequest) -> Any:
        questions, single = texts_of(req.question)
        contexts, _ = texts_of(req.context)
        if len(contexts) == 1:
            contexts = contexts * len(questions)
        if len(contexts) != len(questions):
            raise HTTPException(422, f"got {len(questions)} questions and {len(contexts)} "
                                     "contexts: give one context, or one per question")
        out = await run("answer", list(zip(questions, contexts)), {"top_k": req.top_k},
                        lambda p, xs: p([q for q, _ in xs], [c for _, c in xs], top_k=req.top_k))
        return out[0] if single else out

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run app with uvicorn until SIGINT / SIGTERM (then finish in-flight requests)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)


__all__ = ["MicroBatcher", "create_app", "load_pipelines", "serve"]
