"""HTTP routes: /v1 (search, batch search, index info; conversational_search, rewrite, distill_search for the
sparse-conversational and medical kinds) and the operational /health, /ready, /metrics.

Every searching route: checks (404/409/413/422, 503 for a damaged index), the budget (413), admission (429),
the work within the deadline (504), the body rendered off the event loop when large.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response

from retrieval_kd.serving.searcher import SearchResult

from .problems import ShuttingDown
from .render import JSONBytes, heavy, ms, render_batch, render_one
from .schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    ConversationalSearchRequest,
    ConversationalSearchResponse,
    DistillSearchRequest,
    DistillSearchResponse,
    Health,
    IndexInfo,
    IndexList,
    Problem,
    RewriteRequest,
    RewriteResponse,
    SearchRequest,
    SearchResponse,
    ValidationProblem,
)
from .state import ServerState

RETRY = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
INTERNAL = {500: {"model": Problem, "description": "internal error (one line; the traceback is in the server log)"}}
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    **INTERNAL,
    400: {"model": Problem, "description": "the request cannot be served as given"},
    404: {"model": Problem, "description": "unknown index"},
    409: {"model": Problem, "description": "the index's kind does not offer this operation"},
    422: {"model": ValidationProblem, "description": "invalid request (field errors; the input is not echoed)"},
    503: {"model": Problem, "headers": RETRY, "description": "shutting down, or the index's files are damaged"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": Problem, "description": "the request body did not arrive within RKD_BODY_TIMEOUT_S"},
    413: {"model": Problem, "description": "over a size limit or the request budget (the detail names it)"},
    429: {"model": Problem, "headers": RETRY, "description": "admission queue full (RKD_MAX_PENDING)"},
    504: {"model": Problem, "description": "past the deadline RKD_REQUEST_TIMEOUT_S; the work was cancelled"},
}
KEY_ERROR = {401: {"model": Problem, "description": "missing or wrong X-API-Key"}}
IndexName = Annotated[str, Path(description="index name (as listed by GET /v1/indexes)", max_length=64)]


def state(request: Request) -> ServerState:
    return request.app.state.rkd


State = Annotated[ServerState, Depends(state)]


async def refuse_when_stopping(st: State) -> None:
    """503 for new /v1 requests once SIGTERM arrived."""
    if st.stopping:
        st.metrics.rejected.labels("shutting_down").inc()
        raise ShuttingDown("server is shutting down; retry on another replica", retry_after=1)


v1 = APIRouter(prefix="/v1", dependencies=[Depends(refuse_when_stopping)], responses=V1_ERRORS)
ops = APIRouter(responses=INTERNAL)
metrics_router = APIRouter(responses=INTERNAL)


async def _render(st: ServerState, results: list[SearchResult], with_text: bool, fn: Callable[[], bytes]) -> bytes:
    """fn() on the event loop for small bodies, in the render pool for large ones or ones with doc-store text."""
    if heavy(results, with_text, st.settings.inline_render_hits):
        return await st.off_loop(fn)
    return fn()


@v1.get("/indexes", response_model=IndexList, summary="List the loaded indexes")
async def list_indexes(st: State) -> IndexList:
    return IndexList(indexes=[IndexInfo(**s.info()) for s in st.searchers.values()])


@v1.get("/indexes/{name}", response_model=IndexInfo, summary="Describe one index")
async def get_index(name: IndexName, st: State) -> IndexInfo:
    return IndexInfo(**st.get(name).info())


@v1.post("/indexes/{name}/search", response_model=SearchResponse, response_model_exclude_none=True,
         responses=BODY_ERRORS, summary="Search one query")
async def search(name: IndexName, body: SearchRequest, st: State) -> Response:
    t0 = time.perf_counter()
    s = st.get(name, "search")
    st.check_query(body.query)
    st.check_k(body.k)
    await st.budget(s, [body.query], body.k, body.with_text)

    async def work() -> bytes:
        res = await st.search_one(s, body.query, body.k, body.nprobe)
        return await _render(st, [res], body.with_text, lambda: render_one(s, res, body.with_text, t0, ("timings",)))

    return JSONBytes(await st.execute(1, work()))


@v1.post("/indexes/{name}/search/batch", response_model=BatchSearchResponse, response_model_exclude_none=True,
         responses=BODY_ERRORS, summary="Search several queries")
async def search_batch(name: IndexName, body: BatchSearchRequest, st: State) -> Response:
    t0 = time.perf_counter()
    s = st.get(name, "search")
    if len(body.queries) > st.settings.max_batch:
        raise HTTPException(413, f"{len(body.queries)} queries; the batch limit is {st.settings.max_batch}")
    for i, q in enumerate(body.queries):
        st.check_query(q, f"query {i}")
    st.check_k(body.k)
    await st.budget(s, body.queries, body.k, body.with_text)

    async def work() -> bytes:
        results = await st.run(s.search_batch, body.queries, body.k, body.nprobe)
        st.metrics.batch_size.labels(s.name).observe(len(body.queries))
        return await _render(st, results, body.with_text, lambda: render_batch(s, results, body.with_text, t0))

    return JSONBytes(await st.execute(len(body.queries), work()))


def _check_turns(st: ServerState, turns: list, what: str) -> list[dict]:
    if len(turns) > st.settings.max_turns:
        raise HTTPException(413, f"{len(turns)} {what} turns; the limit is {st.settings.max_turns}")
    for i, t in enumerate(turns):
        st.check_query(t.text, f"{what} turn {i}")
    return [t.model_dump() for t in turns]


@v1.post("/indexes/{name}/conversational_search", response_model=ConversationalSearchResponse,
         response_model_exclude_none=True, responses=BODY_ERRORS,
         summary="Search the current utterance in its conversation (sparse-conversational bundles: DiSCo)")
async def conversational_search(name: IndexName, body: ConversationalSearchRequest, st: State) -> Response:
    t0 = time.perf_counter()
    s = st.get(name, "conversational_search")
    history = _check_turns(st, body.history, "history")
    st.check_query(body.utterance, "utterance")
    st.check_k(body.k)
    await st.budget(s, [body.utterance], body.k, body.with_text)

    async def work() -> bytes:
        res = (await st.run(s.conversational_search, history, body.utterance, body.k)).top(body.k)
        return await _render(st, [res], body.with_text,
                             lambda: render_one(s, res, body.with_text, t0, ("query_terms", "timings")))

    return JSONBytes(await st.execute(1, work()))


@v1.post("/indexes/{name}/distill_search", response_model=DistillSearchResponse, response_model_exclude_none=True,
         responses=BODY_ERRORS, summary="Rewrite a dialogue into a query, then search (medical bundles: Distill-Retrieve-Read)")
async def distill_search(name: IndexName, body: DistillSearchRequest, st: State) -> Response:
    t0 = time.perf_counter()
    s = st.get(name, "distill_search")
    dialogue = _check_turns(st, body.dialogue, "dialogue")
    st.check_k(body.k)
    await st.budget(s, [t["text"] for t in dialogue[-1:]], body.k, body.with_text)

    async def work() -> bytes:
        res = (await st.run(s.distill_search, dialogue, body.k)).top(body.k)
        rewrite = str(res.extra.get("rewrite", ""))
        return await _render(st, [res], body.with_text,
                             lambda: render_one(s, res, body.with_text, t0, ("queries", "timings"), rewrite=rewrite))

    return JSONBytes(await st.execute(1, work()))


@v1.post("/rewrite", response_model=RewriteResponse, response_model_exclude_none=True, responses=BODY_ERRORS,
         summary="Rewrite a dialogue into one search query (medical)")
async def rewrite(body: RewriteRequest, st: State) -> RewriteResponse:
    t0 = time.perf_counter()
    if body.index is not None:
        s = st.get(body.index, "rewrite")
    else:
        able = [s for s in st.searchers.values() if "rewrite" in s.capabilities]
        if not able:
            raise HTTPException(409, "no loaded index can rewrite; rewrite needs a medical bundle")
        if len(able) > 1:
            raise HTTPException(409, f"several indexes can rewrite ({', '.join(s.name for s in able)}); "
                                     "name one in 'index'")
        s = st.get(able[0].name, "rewrite")
    dialogue = _check_turns(st, body.dialogue, "dialogue")
    if hasattr(s, "rewrite_terms"):  # medical: the structured query (text + weighted terms) beside the string
        out = await st.execute(1, st.run(s.rewrite_terms, dialogue))
        return RewriteResponse(index=s.name, rewrite=out["rewrite"], text=out["text"], terms=out["terms"],
                               took_ms=ms(t0))
    text = await st.execute(1, st.run(s.rewrite, dialogue))
    return RewriteResponse(index=s.name, rewrite=text, took_ms=ms(t0))


@ops.get("/health", response_model=Health, response_model_exclude_none=True, summary="Liveness")
async def health(st: State) -> Health:
    return Health(status="ok", indexes=len(st.searchers))


@ops.get("/ready", response_model=Health, response_model_exclude_none=True,
         responses={503: {"model": Health, "description": "stopping, no indexes, or an index's files are damaged"}},
         summary="Readiness (re-checks the bundle files)")
async def ready(st: State, response: Response) -> Health:
    problems = await st.check_health(max_age_s=1.0)
    n = len(st.searchers)
    if st.stopping or not st.searchers or problems:
        response.status_code = 503
        status = "stopping" if st.stopping else ("no indexes" if not n else "damaged")
        return Health(status=status, indexes=n, problems=problems or None)
    return Health(status="ready", indexes=n)


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                    responses={200: {"content": {"text/plain": {}}}})
async def metrics(st: State) -> Response:
    body, ctype = st.metrics.render()
    return Response(body, media_type=ctype)
