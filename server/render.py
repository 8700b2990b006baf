"""Response bodies: hits (+ doc-store text) rendered to JSON bytes, off the event loop when they are large.

The routes return these bytes directly (FastAPI's response models still document them in the OpenAPI); a
response with text, or with more than RKD_INLINE_RENDER_HITS hits, is built in the render pool, so a 20 MB
answer never stalls /health or the other requests on the event loop.
"""
from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from retrieval_kd.serving.searcher import Searcher, SearchResult

from .problems import to_json


class JSONBytes(Response):
    """A JSON response whose body was already encoded."""

    media_type = "application/json"


def ms(t0: float) -> float:
    """Milliseconds since t0 (perf_counter), rounded to µs."""
    return round((time.perf_counter() - t0) * 1000.0, 3)


def hits_of(s: Searcher, res: SearchResult, with_text: bool) -> list[dict[str, Any]]:
    """The hit objects of one result (text and metadata from the doc store when asked)."""
    docs = s.documents(res.ids) if with_text else {}
    out = []
    for i, (d, score) in enumerate(zip(res.ids, res.scores, strict=True), 1):
        hit: dict[str, Any] = {"rank": i, "id": d, "score": float(score)}
        doc = docs.get(d)
        if doc is not None:
            if doc.get("text") is not None:
                hit["text"] = doc["text"]
            if doc.get("metadata") is not None:
                hit["metadata"] = doc["metadata"]
        out.append(hit)
    return out


def result_body(s: Searcher, res: SearchResult, with_text: bool, t0: float, fields: tuple[str, ...] = (),
                **extra: Any) -> dict[str, Any]:
    """One SearchResponse-shaped dict; `fields` names the kind extras (res.extra keys) the response carries."""
    body: dict[str, Any] = {"index": s.name, "hits": hits_of(s, res, with_text), "truncated": bool(res.truncated)}
    for key in fields:
        if res.extra.get(key) is not None:
            body[key] = res.extra[key]
    body.update(extra)
    body["took_ms"] = ms(t0)
    return body


def render_one(s: Searcher, res: SearchResult, with_text: bool, t0: float, fields: tuple[str, ...] = (),
               **extra: Any) -> bytes:
    """JSON bytes of one search response."""
    return to_json(result_body(s, res, with_text, t0, fields, **extra))


def render_batch(s: Searcher, results: list[SearchResult], with_text: bool, t0: float) -> bytes:
    """JSON bytes of a batch response."""
    bodies = [result_body(s, r, with_text, t0) for r in results]
    return to_json({"index": s.name, "results": bodies, "took_ms": ms(t0)})


def heavy(results: list[SearchResult], with_text: bool, inline_hits: int) -> bool:
    """Whether rendering belongs off the event loop (doc-store reads, or many hits)."""
    return with_text or sum(len(r.ids) for r in results) > inline_hits
