"""Property tests: hostile bodies drawn from the server's own JSON schema, for every route.

The promise (unmask.server): a documented 4xx answer with a "detail", or a correct result (the
same as calling the pipeline directly), never a 500, a hang or a traceback. Bodies are built
from /openapi.json: every field gets values of its type and of other types, values just
outside its bounds, odd text (lone surrogates, NUL, mask and special tokens, format fields,
zero-width characters, long runs), fields left out and unknown fields added; and raw bytes.
Tiny random models (tests/test_pipelines_assets.tiny) keep each request to milliseconds.
"""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_pipelines_assets import tiny
from unmask.server import (
    AnswerRequest,
    ClassifyRequest,
    FillRequest,
    NerRequest,
    SimilarityRequest,
    TextsRequest,
    ZeroShotRequest,
    create_app,
    load_pipelines,
)

DOCUMENTED = {200, 400, 404, 413, 422}
ROUTES = {"/fill": FillRequest, "/score": TextsRequest, "/embed": TextsRequest,
          "/similarity": SimilarityRequest, "/classify": ClassifyRequest,
          "/zero-shot": ZeroShotRequest, "/ner": NerRequest, "/answer": AnswerRequest}
ODD = ["", " ", "\t\n", "[MASK]", "a [MASK] b", "[MASK] [MASK] [MASK]", "[CLS] [SEP] [PAD]",
       "\x00", "\ud800", "x\udfffy", "\u200b\u200b", "🤖🤖", "é" * 30, "{}", "{0}", "{:>99999}",
       "{0.__class__}", "{{}}", "This is {}.", "Wolfgang lives in Berlin", "x" * 250,
       "[MASK]" * 40, " ".join(["word"] * 60), "\u0301\u0301", "\ufeff", "<mask>", "##ing"]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    dirs = {k: tiny(root / k, k) for k in ("mlm", "ner", "qa", "nli")}
    pipes = load_pipelines(per_task={"fill-mask": dirs["mlm"], "score": dirs["mlm"],
                                     "embed": dirs["mlm"], "similarity": dirs["mlm"],
                                     "ner": dirs["ner"], "answer": dirs["qa"],
                                     "zero-shot": dirs["nli"], "classify": dirs["nli"]})
    app = create_app(pipes, max_texts=4, max_chars=300, max_body_bytes=20000, max_cost=30000)
    with TestClient(app) as c:
        yield c, pipes, app.openapi()


# --- bodies from the schema --------------------------------------------------------------------

text = st.one_of(st.sampled_from(ODD), st.text(max_size=40),
                 st.lists(st.sampled_from(ODD), min_size=2, max_size=4).map(" ".join))
masked = text.map(lambda t: t + " [MASK]")
FIELDS = {"hypothesis_template": st.sampled_from(["This example is {}.", "{}", "{} {}", "{0}",
                                                  "{:>99999}", "{x}", "{", "}", "{{}} {}"]),
          "inputs": masked}  # (and the field's own type, below)
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | text,
                        lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(text, inner, max_size=3), max_leaves=8)


def from_schema(schema: dict, defs: dict, name: str = "") -> st.SearchStrategy:
    """Values of a JSON schema's shape (bounds overstepped a little); field `name` may draw
    from FIELDS too."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs, name) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        shaped = text | FIELDS.get(name, text)
    elif kind == "integer":
        lo = int(schema.get("minimum", -5))
        hi = int(schema.get("maximum", lo + 200))
        shaped = st.integers(lo - 2, hi + 2) | st.sampled_from([-(2 ** 63), 2 ** 64, 10 ** 30])
    elif kind == "boolean":
        shaped = st.booleans()
    elif kind == "null":
        shaped = st.none()
    elif kind == "array":
        shaped = st.lists(from_schema(schema.get("items", {}), defs, name),
                          max_size=schema.get("maxItems", 4) + 2)
    elif kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        shaped = st.fixed_dictionaries(
            {k: from_schema(v, defs, k) for k, v in props.items() if k in required},
            optional={**{k: from_schema(v, defs, k) for k, v in props.items()
                         if k not in required}, "unknown": anything})
    else:
        shaped = anything
    return shaped


def body_for(openapi: dict, path: str) -> st.SearchStrategy:
    """Bodies of the route's schema; some with one field replaced by anything; some anything."""
    defs = openapi["components"]["schemas"]
    schema = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    shaped = from_schema(schema["schema"], defs)
    fields = list(defs[schema["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"])
    spoiled = st.tuples(shaped, st.sampled_from(fields), anything).map(
        lambda t: {**t[0], t[1]: t[2]})
    return st.one_of(shaped, shaped, shaped, spoiled, anything)


# --- what a correct answer is ------------------------------------------------------------------

def expected(path: str, req, pipes):
    """The answer of calling the pipeline directly with the validated request."""
    if path == "/fill":
        return pipes["fill-mask"](req.inputs, **req.model_dump(exclude={"inputs"}))
    if path == "/score":
        return pipes["score"](req.inputs)
    if path == "/embed":
        return pipes["embed"](req.inputs).tolist()
    if path == "/similarity":
        out = pipes["similarity"](req.a, req.b)
        return out if isinstance(out, float) else out.tolist()
    if path == "/classify":
        return pipes["classify"](req.inputs, top_k=req.top_k)
    if path == "/zero-shot":
        return pipes["zero-shot"](req.inputs, **req.model_dump(exclude={"inputs"}))
    if path == "/ner":
        return pipes["ner"](req.inputs, aggregation=req.aggregation)
    contexts = req.context if isinstance(req.context, list) else [req.context]
    questions = req.question if isinstance(req.question, list) else [req.question]
    if len(contexts) == 1:
        contexts = contexts * len(questions)
    out = pipes["answer"](questions, contexts, top_k=req.top_k)
    return out[0] if isinstance(req.question, str) else out


def close(a, b) -> bool:
    """Equal up to float rounding (merged batches pad differently)."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b or (isinstance(a, float) and not math.isfinite(a))
        return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def check(server, path: str, body) -> None:
    c, pipes, _ = server
    r = c.post(path, content=json.dumps(body).encode(),
               headers={"content-type": "application/json"})
    assert r.status_code in DOCUMENTED, (r.status_code, r.text[:500])
    answer = r.json()
    if r.status_code != 200:
        detail = answer["detail"]
        assert isinstance(detail, str if r.status_code != 422 else (str, list)) and detail
        return
    req = ROUTES[path].model_validate(body)
    want = json.loads(json.dumps(expected(path, req, pipes)))
    assert close(want, answer), (want, answer)


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_schema_drawn_bodies_get_a_documented_answer(server, path):
    @SETTINGS
    @given(body=body_for(server[2], path))
    def prop(body):
        check(server, path, body)

    prop()


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       path=st.sampled_from(sorted(ROUTES) + ["/health", "/nowhere"]))
def test_raw_bytes_get_a_documented_answer(server, raw, path):
    c, _, _ = server
    r = c.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code in DOCUMENTED | {405}, (r.status_code, r.text[:300])
    assert "detail" in r.json()


def test_a_label_too_long_for_the_window_is_refused_not_a_hang(server):
    """Found by the property test: the tokenizer panicked (a BaseException) on the windows'
    overlap, the merged call died unanswered and the client waited for the timeout."""
    c, _, _ = server
    r = c.post("/zero-shot", json={"inputs": "a text", "candidate_labels": ["word " * 50]})
    assert r.status_code == 400 and "shorten the label" in r.json()["detail"]


def test_similarity_among_one_list(server):
    c, pipes, _ = server
    r = c.post("/similarity", json={"a": ["one text", "another text"]})
    assert r.status_code == 200
    assert close(pipes["similarity"](["one text", "another text"]).tolist(), r.json())
