"""Outermost request guard (pure ASGI): body size and time limits, strict JSON, catch-all 500, drain headers.

Every request body is read here before the app sees it: over RKD_MAX_BODY_BYTES → 413; not complete within
RKD_BODY_TIMEOUT_S → 408 and the connection closed; a JSON body that is not strict RFC 8259 JSON in valid
Unicode (NaN, Infinity, numbers that overflow a double, lone UTF-16 surrogates, invalid UTF-8, nesting deeper
than Python can parse) → 422 naming the problem. An exception no handler took answers a one-line 500 (the
traceback goes to the log) and the connection stays usable. While the server drains, every answer carries
`Connection: close`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from .problems import problem

log = logging.getLogger("rkd.server")
BODY_METHODS = ("POST", "PUT", "PATCH")


class BadBody(ValueError):
    """A request body that is not strict JSON."""


def _no_constants(name: str) -> Any:
    raise BadBody(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody(f"number {text[:40]} is out of range")
    return value


def _check_unicode(obj: Any) -> None:
    """BadBody for any string or key holding a lone surrogate (not encodable as UTF-8)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadBody("a string holds a lone UTF-16 surrogate (not valid Unicode)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def strict_json(body: bytes) -> Any:
    """Parse a request body as strict JSON in valid Unicode; BadBody with a one-line reason otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadBody(f"body is not valid UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except BadBody:
        raise
    except json.JSONDecodeError as e:
        raise BadBody(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise BadBody("JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer over Python's digit limit
        raise BadBody(f"invalid JSON ({str(e)[:100]})") from None
    _check_unicode(obj)
    return obj


def _is_json(headers: dict[bytes, bytes]) -> bool:
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return ctype in (b"", b"application/json") or ctype.endswith(b"+json")


class RequestGuard:
    """See the module docstring; `state` is the ServerState (stopping flag, in-flight count)."""

    def __init__(self, app: Any, state: Any):
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        started = {"v": False}

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                started["v"] = True
                if st.stopping:
                    message = {**message, "headers": [*_without(message.get("headers", []), b"connection"),
                                                      (b"connection", b"close")]}
            await send(message)

        st.in_flight += 1
        try:
            replay = await self._read_body(scope, receive, guarded_send)
            if replay is not None:
                await self.app(scope, replay, guarded_send)
        except Exception:  # noqa: BLE001 - the last resort: one line to the client, the traceback to the log
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started["v"]:
                await problem(500, "internal error (logged by the server)")(scope, receive, guarded_send)
        finally:
            st.in_flight -= 1

    async def _read_body(self, scope: dict, receive: Callable, send: Callable) -> Callable | None:
        """The replayed receive once the body is read and checked; None when an error answer was sent."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if scope.get("method") not in BODY_METHODS and not chunked and length in (None, b"0"):
            return receive
        limit = self.state.settings.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await problem(413, f"request body over {limit} bytes", {"Connection": "close"})(scope, receive, send)
            return None
        body = await self._collect(scope, receive, send, limit)
        if body is None:
            return None
        if headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
            # This API takes JSON only; `curl -d '{...}'` labels JSON as a form.
            scope["headers"] = [(k, b"application/json" if k == b"content-type" else v) for k, v in scope["headers"]]
            headers[b"content-type"] = b"application/json"
        if body and _is_json(headers):
            try:
                strict_json(body)
            except BadBody as e:
                err = {"loc": ["body"], "msg": str(e), "type": "json_invalid"}
                await problem(422, f"body: {e}", errors=[err])(scope, receive, send)
                return None
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        return replayed

    async def _collect(self, scope: dict, receive: Callable, send: Callable, limit: int) -> bytes | None:
        """The whole body within the size limit and RKD_BODY_TIMEOUT_S; None when an error answer was sent."""
        chunks, seen = [], 0
        deadline = time.monotonic() + self.state.settings.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                timeout = self.state.settings.body_timeout_s
                await problem(408, f"request body not complete within {timeout:g} s",
                              {"Connection": "close"})(scope, receive, send)
                return None
            if message["type"] != "http.request":
                return None  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await problem(413, f"request body over {limit} bytes", {"Connection": "close"})(scope, receive, send)
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)


def _without(headers: list, name: bytes) -> list:
    return [(k, v) for k, v in headers if k.lower() != name]
