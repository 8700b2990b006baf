"""HTTP routes: /v1 (search, batch search, index info; conversational_search, rewrite, distill_search for the
sparse-conversational and medical kinds) and the operational /health, /ready, /metrics."""
from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response

from retrieval_kd.serving.searcher import Searcher, SearchResult

from .auth import require_api_key
from .schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    ConversationalSearchRequest,
    ConversationalSearchResponse,
    DistillSearchRequest,
    DistillSearchResponse,
    Health,
    Hit,
    IndexInfo,
    IndexList,
    Problem,
    RewriteRequest,
    RewriteResponse,
    SearchRequest,
    SearchResponse,
)
from .state import ServerState

IndexName = Annotated[str, Path(description="index name (as listed by GET /v1/indexes)", max_length=64)]
ERRORS = {c: {"model": Problem} for c in (401, 404, 409, 413)}
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=ERRORS)
ops = APIRouter()


def state(request: Request) -> ServerState:
    return request.app.state.rkd


State = Annotated[ServerState, Depends(state)]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def _response(s: Searcher, res: SearchResult, with_text: bool, t0: float, cls: type = SearchResponse, **extra):
    docs = s.documents(res.ids) if with_text else {}
    hits = [Hit(rank=i, id=d, score=sc, text=docs.get(d, {}).get("text"), metadata=docs.get(d, {}).get("metadata"))
            for i, (d, sc) in enumerate(zip(res.ids, res.scores, strict=True), 1)]
    fields = {k: v for k, v in res.extra.items() if k in cls.model_fields}
    return cls(index=s.name, hits=hits, truncated=res.truncated, took_ms=_ms(t0), **{**fields, **extra})


@v1.get("/indexes", response_model=IndexList, summary="List the loaded indexes")
async def list_indexes(st: State) -> IndexList:
    return IndexList(indexes=[IndexInfo(**s.info()) for s in st.searchers.values()])


@v1.get("/indexes/{name}", response_model=IndexInfo, summary="Describe one index")
async def get_index(name: IndexName, st: State) -> IndexInfo:
    return IndexInfo(**st.get(name).info())


@v1.post("/indexes/{name}/search", response_model=SearchResponse, response_model_exclude_none=True,
         summary="Search one query")
async def search(name: IndexName, body: SearchRequest, st: State) -> SearchResponse:
    t0 = time.perf_counter()
    s = st.get(name, "search")
    st.check_query(body.query)
    st.check_k(body.k)
    res = await st.search_one(s, body.query, body.k, body.nprobe)
    return _response(s, res, body.with_text, t0)


@v1.post("/indexes/{name}/search/batch", response_model=BatchSearchResponse, response_model_exclude_none=True,
         summary="Search several queries")
async def search_batch(name: IndexName, body: BatchSearchRequest, st: State) -> BatchSearchResponse:
    t0 = time.perf_counter()
    s = st.get(name, "search")
    if len(body.queries) > st.settings.max_batch:
        raise HTTPException(413, f"{len(body.queries)} queries; the batch limit is {st.settings.max_batch}")
    for i, q in enumerate(body.queries):
        st.check_query(q, f"query {i}")
    st.check_k(body.k)
    results = await st.run(s.search_batch, body.queries, body.k, body.nprobe)
    st.metrics.batch_size.labels(s.name).observe(len(body.queries))
    return BatchSearchResponse(index=s.name, results=[_response(s, r, body.with_text, t0) for r in results],
                               took_ms=_ms(t0))


def _check_turns(st: ServerState, turns: list, what: str) -> list[dict]:
    if len(turns) > st.settings.max_turns:
        raise HTTPException(413, f"{len(turns)} {what} turns; the limit is {st.settings.max_turns}")
    for i, t in enumerate(turns):
        st.check_query(t.text, f"{what} turn {i}")
    return [t.model_dump() for t in turns]


@v1.post("/indexes/{name}/conversational_search", response_model=ConversationalSearchResponse,
         response_model_exclude_none=True,
         summary="Search the current utterance in its conversation (sparse-conversational bundles: DiSCo)")
async def conversational_search(name: IndexName, body: ConversationalSearchRequest,
                                st: State) -> ConversationalSearchResponse:
    t0 = time.perf_counter()
    s = st.get(name, "conversational_search")
    history = _check_turns(st, body.history, "history")
    st.check_query(body.utterance, "utterance")
    st.check_k(body.k)
    res = await st.run(s.conversational_search, history, body.utterance, body.k)
    return _response(s, res.top(body.k), body.with_text, t0, ConversationalSearchResponse)


@v1.post("/indexes/{name}/distill_search", response_model=DistillSearchResponse, response_model_exclude_none=True,
         summary="Rewrite a dialogue into a query, then search (medical bundles: Distill-Retrieve-Read)")
async def distill_search(name: IndexName, body: DistillSearchRequest, st: State) -> DistillSearchResponse:
    t0 = time.perf_counter()
    s = st.get(name, "distill_search")
    dialogue = _check_turns(st, body.dialogue, "dialogue")
    st.check_k(body.k)
    res = await st.run(s.distill_search, dialogue, body.k)
    return _response(s, res.top(body.k), body.with_text, t0, DistillSearchResponse,
                     rewrite=str(res.extra.get("rewrite", "")))


@v1.post("/rewrite", response_model=RewriteResponse, summary="Rewrite a dialogue into one search query (medical)")
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
        s = able[0]
    dialogue = _check_turns(st, body.dialogue, "dialogue")
    text = await st.run(s.rewrite, dialogue)
    return RewriteResponse(index=s.name, rewrite=text, took_ms=_ms(t0))


@ops.get("/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    return Health(status="ok")


@ops.get("/ready", response_model=Health, responses={503: {"model": Health}}, summary="Readiness")
async def ready(st: State, response: Response) -> Health:
    if st.stopping or not st.searchers:
        response.status_code = 503
        return Health(status="stopping" if st.stopping else "no indexes", indexes=len(st.searchers))
    return Health(status="ready", indexes=len(st.searchers))


@ops.get("/metrics", summary="Prometheus metrics", response_class=Response,
         responses={200: {"content": {"text/plain": {}}}})
async def metrics(st: State) -> Response:
    body, ctype = st.metrics.render()
    return Response(body, media_type=ctype)
