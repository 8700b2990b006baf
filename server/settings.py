"""Server settings from the environment (RKD_*), e.g. RKD_API_KEY, RKD_MICROBATCH_WAIT_MS, RKD_THREADS."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from retrieval_kd.utils import machine_cores


class ServerSettings(BaseSettings):
    """Every knob of `rkd serve`; each field reads RKD_<FIELD> (bundles: comma-separated paths or names)."""

    model_config = SettingsConfigDict(env_prefix="RKD_", extra="forbid", validate_default=True)

    bundles: Annotated[list[str], NoDecode] = Field(default_factory=list, description="bundle folders or names")
    bundle_root: Path | None = Field(None, description="bundles are resolved under, and never outside, this folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="when set, /v1 routes need the header X-API-Key")
    metrics_need_key: bool = Field(False, description="/metrics needs X-API-Key too (when the server has a key)")
    threads: int | None = Field(None, ge=1, le=256, description="intra-op threads of onnxruntime and faiss per "
                                "worker (default: cores // workers when workers is set, else 1)")
    workers: int | None = Field(None, ge=1, le=64, description="worker threads running encoder + index calls "
                                "(default: cores // threads when threads is set, else one per core)")
    spin: bool = Field(False, description="idle onnxruntime intra-op threads spin (lower latency on a dedicated "
                                          "machine; on a small one they take the event loop's core)")
    microbatch: bool | None = Field(None, description="merge concurrent /search requests into one encoder + index "
                                    "call (default: on with one worker, off with several: measured faster so)")
    microbatch_wait_ms: float = Field(2.0, ge=0.0, le=100.0, description="longest wait for more requests")
    microbatch_max: int = Field(32, ge=1, le=1024, description="largest merged batch")
    max_k: int = Field(1000, ge=1, le=10000)
    max_batch: int = Field(64, ge=1, le=4096, description="most queries in one /search/batch request")
    max_query_bytes: int = Field(4096, ge=16, description="longer queries are rejected (413)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="larger request bodies are rejected (413)")
    max_turns: int = Field(64, ge=1, description="most dialogue/history turns in one request")
    max_request_tokens: int = Field(4096, ge=1, description="most encoder tokens (summed over queries, after "
                                                            "truncation) one request may cost (413)")
    max_request_hits: int = Field(10_000, ge=1, description="most hits (queries x k) one request may ask (413)")
    max_request_text_hits: int = Field(2_000, ge=1, description="most hits (queries x k) with with_text (413)")
    max_pending: int = Field(256, ge=1, description="most queries admitted (queued or running) at once; "
                                                    "beyond, 429 with Retry-After")
    request_timeout_s: float = Field(10.0, gt=0.0, le=600.0, description="per-request deadline: 504 past it, "
                                                                         "its work cancelled")
    inline_render_hits: int = Field(100, ge=0, description="responses with more hits are serialised in a "
                                                           "thread, off the event loop")
    health_interval_s: float = Field(5.0, gt=0.0, description="how often the bundle files are re-checked")
    shutdown_grace_s: float = Field(10.0, ge=0.0, le=600.0, description="after SIGTERM, how long requests in "
                                                                        "flight may take to finish")
    shutdown_drain_s: float = Field(2.0, ge=0.0, le=600.0, description="after SIGTERM, keep the port open up to "
                                    "this long while keep-alive connections are open (each told to close)")
    max_connections: int = Field(1024, ge=1, description="open connections beyond this are answered 503, closed")
    keep_alive_s: float = Field(5.0, gt=0.0, description="idle keep-alive connections are closed after this")
    header_timeout_s: float = Field(10.0, gt=0.0, description="a request head not complete by then: 408, closed")
    body_timeout_s: float = Field(10.0, gt=0.0, description="a request body not complete by then: 408, closed")
    verify_hashes: bool = Field(True, description="check sha256 of every bundle file at start-up")
    docs: bool = Field(True, description="serve the OpenAPI docs at /docs (assets served locally, no CDN)")
    page: bool = Field(True, description="serve the search page at / (static files, no CDN; API calls need the key)")
    access_log: bool = False
    log_level: str = "warning"

    @field_validator("bundles", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @property
    def runtime_microbatch(self) -> bool:
        """Micro-batching: `microbatch`, else on only with one worker (with a worker per core, requests served in
        parallel beat merged ones: 256 vs 183 q/s at 16 clients on 2 cores, `rkd bench server`)."""
        return self.microbatch if self.microbatch is not None else self.runtime_workers == 1

    @property
    def runtime_workers(self) -> int:
        """Workers used: `workers`, else the cores left for them by `threads` (workers x threads = the cores)."""
        return self.workers or max(1, machine_cores() // (self.threads or 1))

    @property
    def runtime_threads(self) -> int:
        """Intra-op threads per worker: `threads`, else the cores left by `workers` (1 when neither is set)."""
        if self.threads:
            return self.threads
        return max(1, machine_cores() // self.workers) if self.workers else 1
