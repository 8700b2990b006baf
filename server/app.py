"""App factory: `create_app(bundles)` loads and verifies every bundle (errors stop start-up), `serve` runs uvicorn.

Imports onnxruntime, faiss, numpy, tokenizers, fastapi: never torch.

    python -m server bundles/cacm --port 8000        # or: rkd serve bundles/cacm --port 8000
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from retrieval_kd import __version__
from retrieval_kd.errors import BundleError, ConfigError, RKDError
from retrieval_kd.serving.bundle import open_bundle, resolve_bundle
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import NotSupported, Searcher

from .auth import BodyLimitMiddleware
from .metrics import MetricsMiddleware
from .routes import ops, v1
from .settings import ServerSettings
from .state import ServerState

DESCRIPTION = """Search served from retrieval_kd bundles (ONNX query encoder + index + SQLite doc store).
When the server has an API key (RKD_API_KEY), every /v1 route needs the header `X-API-Key`."""


def load_searchers(bundles: Sequence[str | Path], settings: ServerSettings) -> dict[str, Searcher]:
    """Open and verify each bundle; a bad one raises BundleError naming the file (the others are closed)."""
    if not bundles:
        raise ConfigError("no bundles to serve: pass bundle folders (rkd serve BUNDLE ...) or set RKD_BUNDLES")
    options = RuntimeOptions(threads=settings.threads)
    searchers: dict[str, Searcher] = {}
    try:
        for spec in bundles:
            path = resolve_bundle(spec, settings.bundle_root)
            s = open_bundle(path, options, verify=settings.verify_hashes)
            if s.name in searchers:
                s.close()
                raise BundleError(f"{path}: index name {s.name!r} is already served from {searchers[s.name].root}")
            searchers[s.name] = s
    except BaseException:
        for s in searchers.values():
            s.close()
        raise
    return searchers


def create_app(bundles: Sequence[str | Path] | None = None, settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving `bundles` (default: settings.bundles, i.e. RKD_BUNDLES)."""
    settings = settings or ServerSettings()
    searchers = load_searchers(list(bundles) if bundles is not None else settings.bundles, settings)
    st = ServerState(settings, searchers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        st.stopping = False
        yield
        await st.stop()

    app = FastAPI(title="retrieval_kd search server", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.rkd = st
    app.include_router(v1)
    app.include_router(ops)

    @app.exception_handler(NotSupported)
    async def _not_supported(request: Request, exc: NotSupported) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RKDError)
    async def _user_error(request: Request, exc: RKDError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=st.metrics, is_index=searchers.__contains__)
    return app


def serve(bundles: Sequence[str | Path], settings: ServerSettings | None = None) -> None:
    """Load the bundles (failing fast), then run uvicorn until interrupted."""
    import uvicorn

    settings = settings or ServerSettings()
    app = create_app(bundles, settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=settings.access_log, timeout_graceful_shutdown=5)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m server BUNDLE... [--host H] [--port P]`; other settings come from RKD_* variables."""
    ap = argparse.ArgumentParser(prog="python -m server", description="Serve retrieval_kd bundles over HTTP.")
    ap.add_argument("bundles", nargs="*", help="bundle folders (or names under RKD_BUNDLE_ROOT)")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--no-microbatch", action="store_true", help="one encoder call per request")
    args = ap.parse_args(argv)
    over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.no_microbatch:
        over["microbatch"] = False
    try:
        settings = ServerSettings(**over)
        serve(args.bundles or settings.bundles, settings)
    except ValidationError as e:
        print(f"error: settings (RKD_* variables): {e}", file=sys.stderr)
        sys.exit(2)
    except RKDError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
