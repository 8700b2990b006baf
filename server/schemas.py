"""Request and response schemas of the HTTP API (strict types: a string k or a numeric query is a 422).

Integers follow JSON Schema: 184.0 is the integer 184, 2.5 and "3" are not integers, true is not a number.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

MAX_QUERY_CHARS = 100_000  # schema-level ceiling; the byte limit (RKD_MAX_QUERY_BYTES) is checked per request


def _integral(v: object) -> object:
    """A float with no fractional part is the integer it equals (JSON Schema's "integer"); the rest unchanged."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


KInt = Annotated[StrictInt, Field(ge=1, le=1000, description="number of hits, 1..1000 (and at most RKD_MAX_K)"),
                 BeforeValidator(_integral)]
NProbe = Annotated[StrictInt, Field(ge=1, le=65536), BeforeValidator(_integral)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NOT_BLANK = r"[^ \t\n\r\f\v]"  # at least one character that is not ASCII whitespace (same in every regex dialect)


def _not_blank(v: str) -> str:
    if not re.search(NOT_BLANK, v):
        raise ValueError("must not be empty or whitespace only")
    return v


Query = Annotated[StrictStr, Field(min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra={"pattern": NOT_BLANK})]


class SearchRequest(_Strict):
    """One query."""

    query: StrictStr = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, examples=["parallel sorting algorithms"],
                             json_schema_extra={"pattern": NOT_BLANK})
    k: KInt = 10
    nprobe: NProbe | None = Field(None, description="IVF lists to visit (default: the bundle's)")
    with_text: StrictBool = Field(False, description="include document text and metadata from the doc store")

    _q = field_validator("query")(_not_blank)


class BatchSearchRequest(_Strict):
    """Several queries with shared k / nprobe (one encoder call, one index search)."""

    queries: list[Query] = Field(..., min_length=1, max_length=4096, description="at most RKD_MAX_BATCH")
    k: KInt = 10
    nprobe: NProbe | None = None
    with_text: StrictBool = False

    @field_validator("queries")
    @classmethod
    def _each(cls, v: list[str]) -> list[str]:
        for i, q in enumerate(v):
            if not re.search(NOT_BLANK, q):
                raise ValueError(f"query {i} must not be empty or whitespace only")
        return v


class Turn(_Strict):
    """One dialogue turn."""

    role: Literal["user", "system", "assistant"]
    text: StrictStr = Field(..., max_length=MAX_QUERY_CHARS)


class ConversationalSearchRequest(_Strict):
    """DiSCo: the current utterance in the context of the previous turns (sparse-conversational bundles)."""

    history: list[Turn] = Field(default_factory=list, max_length=1024)
    utterance: StrictStr = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, json_schema_extra={"pattern": NOT_BLANK})
    k: KInt = 10
    with_text: StrictBool = False

    _u = field_validator("utterance")(_not_blank)


class RewriteRequest(_Strict):
    """Distill-Retrieve-Read: rewrite a dialogue into one search query (medical bundles)."""

    dialogue: list[Turn] = Field(..., min_length=1, max_length=1024)
    index: StrictStr | None = Field(None, description="bundle to use; default: the only loaded one that rewrites")


class DistillSearchRequest(_Strict):
    """Distill-Retrieve-Read: rewrite the dialogue, then search (medical bundles)."""

    dialogue: list[Turn] = Field(..., min_length=1, max_length=1024)
    k: KInt = 10
    with_text: StrictBool = False


class Hit(BaseModel):
    """One ranked document."""

    rank: int
    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] | None = None


class QueryTerm(BaseModel):
    term: str
    weight: float


class Timings(BaseModel):
    """Milliseconds of each stage inside the searcher call (shared by the queries of one micro-batch)."""

    encode_ms: float | None = Field(None, description="query encoder (ONNX)")
    rewrite_ms: float | None = Field(None, description="dialogue rewriter (medical)")
    search_ms: float | None = Field(None, description="index search (and fusion)")


class SearchResponse(BaseModel):
    """Hits of one query; `truncated` when the query was cut at the encoder's token limit; `took_ms` in the server."""

    index: str
    hits: list[Hit]
    truncated: bool = False
    timings: Timings | None = None
    took_ms: float


class BatchSearchResponse(BaseModel):
    index: str
    results: list[SearchResponse]
    took_ms: float


class ConversationalSearchResponse(SearchResponse):
    query_terms: list[QueryTerm] | None = Field(None, description="top expansion terms of the encoded turn")


class DistillSearchResponse(SearchResponse):
    rewrite: str
    queries: list[str] | None = Field(None, description="the distilled search queries (the rewrite's lines)")


class RewriteResponse(BaseModel):
    index: str
    rewrite: str
    text: str | None = Field(None, description="the main query as a person reads it (no word repeated)")
    terms: list[QueryTerm] | None = Field(None, description="its weighted terms: what BM25 scores (weight x impact)")
    took_ms: float


class IndexInfo(BaseModel):
    """A loaded bundle (kinds may add fields)."""

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str
    capabilities: list[str]
    documents: int | None = None
    encoder: dict[str, Any] | None = None
    index: dict[str, Any] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str | None = None
    default_nprobe: int | None = None
    nlist: int | None = None
    ntotal: int | None = None


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class Problem(BaseModel):
    """Error body of every 4xx/5xx answer: one line, never a traceback or the echoed input."""

    detail: str


class FieldError(BaseModel):
    """One invalid field: where (body.k, body.queries.3), what is wrong, pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(Problem):
    """Error body of a 422: the one-line detail names the first invalid field; `errors` lists up to 10."""

    errors: list[FieldError] = Field(default_factory=list)


class Health(BaseModel):
    """Liveness / readiness: status, number of loaded indexes, and what makes the server unready."""

    status: str
    indexes: int
    problems: dict[str, str] | None = Field(None, description="damaged indexes: name -> file and reason")
