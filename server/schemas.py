"""Request and response schemas of the HTTP API (strict types: a string k or a numeric query is a 422)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

MAX_QUERY_CHARS = 100_000  # schema-level ceiling; the byte limit (RKD_MAX_QUERY_BYTES) is checked per request
K = Field(10, ge=1, le=1000, description="number of hits, 1..1000 (and at most RKD_MAX_K)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty or whitespace only")
    return v


class SearchRequest(_Strict):
    """One query."""

    query: StrictStr = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, examples=["parallel sorting algorithms"])
    k: StrictInt = K
    nprobe: StrictInt | None = Field(None, ge=1, le=65536, description="IVF lists to visit (default: the bundle's)")
    with_text: StrictBool = Field(False, description="include document text and metadata from the doc store")

    _q = field_validator("query")(_not_blank)


class BatchSearchRequest(_Strict):
    """Several queries with shared k / nprobe (one encoder call, one index search)."""

    queries: list[StrictStr] = Field(..., min_length=1, max_length=4096, description="at most RKD_MAX_BATCH")
    k: StrictInt = K
    nprobe: StrictInt | None = Field(None, ge=1, le=65536)
    with_text: StrictBool = False

    @field_validator("queries")
    @classmethod
    def _each(cls, v: list[str]) -> list[str]:
        for i, q in enumerate(v):
            if not q.strip():
                raise ValueError(f"query {i} must not be empty or whitespace only")
            if len(q) > MAX_QUERY_CHARS:
                raise ValueError(f"query {i} is longer than {MAX_QUERY_CHARS} characters")
        return v


class Turn(_Strict):
    """One dialogue turn."""

    role: Literal["user", "system", "assistant"]
    text: StrictStr = Field(..., max_length=MAX_QUERY_CHARS)


class ConversationalSearchRequest(_Strict):
    """DiSCo: the current utterance in the context of the previous turns (sparse-conversational bundles)."""

    history: list[Turn] = Field(default_factory=list, max_length=1024)
    utterance: StrictStr = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    k: StrictInt = K
    with_text: StrictBool = False

    _u = field_validator("utterance")(_not_blank)


class RewriteRequest(_Strict):
    """Distill-Retrieve-Read: rewrite a dialogue into one search query (medical bundles)."""

    dialogue: list[Turn] = Field(..., min_length=1, max_length=1024)
    index: StrictStr | None = Field(None, description="bundle to use; default: the only loaded one that rewrites")


class DistillSearchRequest(_Strict):
    """Distill-Retrieve-Read: rewrite the dialogue, then search (medical bundles)."""

    dialogue: list[Turn] = Field(..., min_length=1, max_length=1024)
    k: StrictInt = K
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


class SearchResponse(BaseModel):
    """Hits of one query; `truncated` when the query was cut at the encoder's token limit."""

    index: str
    hits: list[Hit]
    truncated: bool = False
    took_ms: float


class BatchSearchResponse(BaseModel):
    index: str
    results: list[SearchResponse]
    took_ms: float


class ConversationalSearchResponse(SearchResponse):
    query_terms: list[QueryTerm] | None = Field(None, description="top expansion terms of the encoded turn")


class DistillSearchResponse(SearchResponse):
    rewrite: str


class RewriteResponse(BaseModel):
    index: str
    rewrite: str
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
    """Error body of every 4xx answer the server raises itself."""

    detail: str


class Health(BaseModel):
    status: str
    indexes: int | None = None
