"""Error answers: every 4xx/5xx is a JSON Problem with a one-line `detail` (never a traceback, never the input).

Exceptions the routes raise: `Overloaded` (429 + Retry-After), `ShuttingDown` and `serving.BundleUnavailable`
(503 + Retry-After), `DeadlineExceeded` and `serving.Cancelled` (504); `NotSupported` answers 409, other
`RKDError`s 400, request validation 422 (field errors without the echoed input).
"""
from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from retrieval_kd.errors import RKDError
from retrieval_kd.serving.cancel import Cancelled
from retrieval_kd.serving.runtime import EncoderFailure
from retrieval_kd.serving.searcher import BundleUnavailable, NotSupported

log = logging.getLogger("rkd.server")
MAX_ERRORS = 10  # field errors listed in a 422 body
MAX_LOC = 64  # characters of one location part (a client-chosen key) echoed back


class ServerProblem(Exception):
    """An error with its HTTP status, one-line detail and extra headers."""

    status = 500

    def __init__(self, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Overloaded(ServerProblem):
    """The admission queue is full."""

    status = 429


class ShuttingDown(ServerProblem):
    """The server received SIGTERM: new work is refused while requests in flight finish."""

    status = 503


class DeadlineExceeded(ServerProblem):
    """The request ran past RKD_REQUEST_TIMEOUT_S; its work was cancelled."""

    status = 504


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON; ValueError for NaN/Infinity (never sent)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A JSON Problem response: {"detail": "..."} (+ extra fields)."""
    body = json.dumps({"detail": detail, **extra}, ensure_ascii=True).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location, message and type of each error (bounded), without the input or context pydantic keeps."""
    out = []
    for err in exc.errors()[:MAX_ERRORS]:
        loc = [p if isinstance(p, int) else str(p)[:MAX_LOC] for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:300], "type": str(err.get("type", ""))[:64]})
    return out


def validation_problem(exc: RequestValidationError) -> Response:
    """422 with a one-line detail naming the first field, and the field errors (no echoed input)."""
    errors = _field_errors(exc)
    total = len(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {total - 1} more)" if total > 1 else ""
    return problem(422, f"{where}: {first['msg']}{more}" if where else first["msg"], errors=errors)


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into Problems."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(ServerProblem)
    async def _server(request: Request, exc: ServerProblem) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return problem(exc.status, exc.detail, headers)

    @app.exception_handler(BundleUnavailable)
    async def _unavailable(request: Request, exc: BundleUnavailable) -> Response:
        return problem(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(Cancelled)
    async def _cancelled(request: Request, exc: Cancelled) -> Response:
        return problem(504, str(exc))

    @app.exception_handler(NotSupported)
    async def _not_supported(request: Request, exc: NotSupported) -> Response:
        return problem(409, str(exc))

    @app.exception_handler(EncoderFailure)
    async def _encoder(request: Request, exc: EncoderFailure) -> Response:
        log.error("encoder failure on %s: %s", request.url.path, exc)
        return problem(500, f"internal error: the query encoder failed ({str(exc)[:200]})")

    @app.exception_handler(RKDError)
    async def _user_error(request: Request, exc: RKDError) -> Response:
        return problem(400, str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__)
