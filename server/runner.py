"""uvicorn, run like a production engine: connection and header limits, a drained shutdown, exit code 0.

Limits (each an RKD_* setting): at most RKD_MAX_CONNECTIONS open connections (one more is answered 503 and
closed), a request head must be complete within RKD_HEADER_TIMEOUT_S of its first byte (or of the
connection's opening) else 408 and closed, idle keep-alive connections close after RKD_KEEP_ALIVE_S; body
limits are in `guard.py`.

Shutdown on SIGTERM or SIGINT: /ready answers 503 at once and new /v1 requests 503, every answer with
`Connection: close`, while the port stays open; requests in flight (queued ones too) finish within
RKD_SHUTDOWN_GRACE_S (those still running then answer 503); keep-alive connections still open get up to
RKD_SHUTDOWN_DRAIN_S to send their next request and be told to close (no connection resets); then the port
closes and the process exits 0. A second signal exits at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings

log = logging.getLogger("rkd.server")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raw_answer(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"retry-after: 1\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a request-head deadline (set by `protocol_for`)."""

    max_connections = 1024
    header_timeout_s = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.write(_raw_answer(503, "Service Unavailable", "too many open connections"))
            transport.close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_head_timer()  # part of a head is buffered: its deadline runs from its first byte
        else:
            self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if getattr(self, "_head_timer", None) is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0] or self.cycle is None:
            self.transport.write(_raw_answer(408, "Request Timeout", "request head not complete in time"))
            self.transport.close()


def protocol_for(settings: ServerSettings) -> type[GuardedH11Protocol]:
    """A GuardedH11Protocol subclass carrying the settings' limits."""
    return type("RKDProtocol", (GuardedH11Protocol,), {"max_connections": settings.max_connections,
                                                        "header_timeout_s": settings.header_timeout_s})


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose signals start a drain (see the module docstring) and that never re-raises them."""

    def __init__(self, config: uvicorn.Config, state: Any, settings: ServerSettings):
        super().__init__(config)
        self.rkd = state
        self.settings = settings
        self._drain: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started and self.settings.page:
            print(f"search page: {self.page_url()}", flush=True)

    def page_url(self) -> str:
        """http://host:port/ of the search page (the bound port; a wildcard host shown as loopback)."""
        port = self.settings.port
        with contextlib.suppress(AttributeError, IndexError, OSError):
            port = self.servers[0].sockets[0].getsockname()[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.settings.host, self.settings.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.rkd.stopping or self._loop is None:
            self.should_exit = self.force_exit = True  # second signal, or one before start-up finished
            return
        self.rkd.stopping = True  # /ready is 503 from this instant
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self.drain())

    async def drain(self) -> None:
        """Wait for requests in flight (within the grace period), abort the rest with 503, then exit."""
        s, st = self.settings, self.rkd
        t0 = time.monotonic()
        log.warning("shutdown: draining %d request(s) (grace %.1f s)", st.in_flight, s.shutdown_grace_s)

        def waiting() -> bool:
            elapsed = time.monotonic() - t0
            connections = len(self.server_state.connections) > 0 and elapsed < s.shutdown_drain_s
            return connections or (st.in_flight > 0 and elapsed < s.shutdown_grace_s)

        while waiting():
            await asyncio.sleep(0.02)
        if st.in_flight:
            log.warning("shutdown: grace period over, %d request(s) answered 503", st.in_flight)
            st.admission.abort_all()
            end = time.monotonic() + 2.0
            while st.in_flight and time.monotonic() < end:
                await asyncio.sleep(0.02)
        self.should_exit = True


def run(app: Any, settings: ServerSettings) -> None:
    """Serve `app` with the settings' host, port and limits until a signal; returns after a clean shutdown."""
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=settings.access_log, http=protocol_for(settings), lifespan="on",
                            timeout_keep_alive=max(1, round(settings.keep_alive_s)), timeout_graceful_shutdown=3,
                            h11_max_incomplete_event_size=64 * 1024)
    try:
        DrainingServer(config, app.state.rkd, settings).run()
    finally:
        app.state.rkd.close()
