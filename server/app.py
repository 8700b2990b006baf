"""App factory: `create_app(bundles)` loads and verifies every bundle (errors stop start-up); `serve` runs it.

Imports onnxruntime, faiss, numpy, tokenizers, fastapi: never torch.

    python -m server bundles/cacm --port 8000        # or: rkd serve bundles/cacm --port 8000
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fastapi import Depends, FastAPI
from pydantic import ValidationError

from retrieval_kd import __version__
from retrieval_kd.errors import BundleError, ConfigError, RKDError
from retrieval_kd.serving.bundle import open_bundle, resolve_bundle
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import Searcher

from . import docs, page, problems
from .auth import require_api_key
from .guard import RequestGuard
from .metrics import MetricsMiddleware
from .routes import KEY_ERROR, metrics_router, ops, v1
from .settings import ServerSettings
from .state import ServerState

DESCRIPTION = """Search served from retrieval_kd bundles (ONNX query encoder + index + SQLite doc store).
Every error is a JSON object with a one-line `detail`. Requests over a limit or the request budget answer 413,
a full admission queue 429 (with Retry-After), a request past its deadline 504, a server shutting down or an
index whose files are damaged 503."""
KEYED = "\nThis server has an API key: every /v1 route needs the header `X-API-Key`."


def load_searchers(bundles: Sequence[str | Path], settings: ServerSettings) -> dict[str, Searcher]:
    """Open and verify each bundle; a bad one raises BundleError naming the file (the others are closed)."""
    if not bundles:
        raise ConfigError("no bundles to serve: pass bundle folders (rkd serve BUNDLE ...) or set RKD_BUNDLES")
    options = RuntimeOptions(threads=settings.runtime_threads, spin=settings.spin)
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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st.stopping = False
        watcher = asyncio.get_running_loop().create_task(st.watch_health(), name="rkd-health")
        try:
            yield
        finally:
            watcher.cancel()
            await st.stop()

    keyed = settings.api_key is not None
    app = FastAPI(title="retrieval_kd search server", version=__version__, description=DESCRIPTION + (KEYED * keyed),
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.rkd = st
    key = [Depends(require_api_key)] if keyed else []
    app.include_router(v1, dependencies=key, responses=KEY_ERROR if keyed else None)
    app.include_router(ops)
    metrics_keyed = keyed and settings.metrics_need_key
    app.include_router(metrics_router, dependencies=key if metrics_keyed else [],
                       responses=KEY_ERROR if metrics_keyed else None)
    problems.install(app)
    docs.install(app, settings)
    if settings.page:
        page.install(app)
    app.add_middleware(RequestGuard, state=st)
    app.add_middleware(MetricsMiddleware, metrics=st.metrics, is_index=searchers.__contains__)
    return app


def serve(bundles: Sequence[str | Path], settings: ServerSettings | None = None) -> None:
    """Load the bundles (failing fast), then run uvicorn until SIGTERM/SIGINT (drained shutdown, exit 0)."""
    from .runner import run

    settings = settings or ServerSettings()
    run(create_app(bundles, settings), settings)


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
        err = e.errors(include_url=False, include_input=False)[0]
        print(f"error: settings (RKD_* variables): {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        sys.exit(2)
    except RKDError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
