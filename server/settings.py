"""Server settings from the environment (RKD_*), e.g. RKD_API_KEY, RKD_MICROBATCH_WAIT_MS, RKD_THREADS."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServerSettings(BaseSettings):
    """Every knob of `rkd serve`; each field reads RKD_<FIELD> (bundles: comma-separated paths or names)."""

    model_config = SettingsConfigDict(env_prefix="RKD_", extra="forbid", validate_default=True)

    bundles: Annotated[list[str], NoDecode] = Field(default_factory=list, description="bundle folders or names")
    bundle_root: Path | None = Field(None, description="bundles are resolved under, and never outside, this folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="when set, /v1 routes need the header X-API-Key")
    threads: int = Field(1, ge=1, le=256, description="intra-op threads of onnxruntime and faiss")
    workers: int = Field(1, ge=1, le=64, description="worker threads running encoder + index calls")
    microbatch: bool = Field(True, description="merge concurrent /search requests into one encoder + index call")
    microbatch_wait_ms: float = Field(2.0, ge=0.0, le=100.0, description="longest wait for more requests")
    microbatch_max: int = Field(32, ge=1, le=1024, description="largest merged batch")
    max_k: int = Field(1000, ge=1, le=10000)
    max_batch: int = Field(64, ge=1, le=4096, description="most queries in one /search/batch request")
    max_query_bytes: int = Field(4096, ge=16, description="longer queries are rejected (413)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="larger request bodies are rejected (413)")
    max_turns: int = Field(64, ge=1, description="most dialogue/history turns in one request")
    verify_hashes: bool = Field(True, description="check sha256 of every bundle file at start-up")
    access_log: bool = False
    log_level: str = "warning"

    @field_validator("bundles", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v
