"""Admission control: a bounded count of admitted queries (429 + Retry-After beyond it), request budgets (413)
and the per-request deadline (504, the work cancelled).

A request is admitted with its cost in queries (a /search is 1, a batch its query count); the queue holds at
most RKD_MAX_PENDING queries queued or running. Retry-After is the time the admitted work needs at the recent
mean service time (at least 1 s). Budgets are checked before admission: encoder tokens summed over the
request's queries (RKD_MAX_REQUEST_TOKENS) and hits asked, queries x k (RKD_MAX_REQUEST_HITS, or
RKD_MAX_REQUEST_TEXT_HITS when the hits carry their text).
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import HTTPException

from .problems import DeadlineExceeded, Overloaded, ShuttingDown


class Admission:
    """Counts admitted queries, estimates Retry-After, enforces the deadline and the shutdown abort."""

    def __init__(self, max_pending: int, timeout_s: float, workers: int, metrics: Any = None):
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self.workers = workers
        self.metrics = metrics
        self.pending = 0
        self.stopping = False
        self._service_s = 0.01  # moving average of seconds per admitted query
        self._abort: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def retry_after(self) -> int:
        """Seconds until the admitted work is likely done (at least 1)."""
        return max(1, min(60, math.ceil(self.pending * self._service_s / self.workers)))

    def _refuse(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    def enter(self, cost: int) -> None:
        """Admit `cost` queries, or raise ShuttingDown (503) / Overloaded (429)."""
        if self.stopping:
            self._refuse("shutting_down")
            raise ShuttingDown("server is shutting down; retry on another replica", retry_after=1)
        if self.pending + cost > self.max_pending and self.pending > 0:
            self._refuse("overloaded")
            raise Overloaded(f"server busy: {self.pending} queries admitted, the limit is {self.max_pending} "
                             "(RKD_MAX_PENDING)", retry_after=self.retry_after())
        self.pending += cost
        self._gauge()

    def leave(self, cost: int, seconds: float) -> None:
        """Release `cost` queries that took `seconds` in all."""
        self.pending -= cost
        self._service_s = 0.9 * self._service_s + 0.1 * (seconds / max(1, cost))
        self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.pending.set(self.pending)

    def abort_all(self) -> None:
        """Make every admitted request answer 503 now (end of the shutdown grace period)."""
        if self._abort is not None:
            self._abort[1].set()

    def _abort_event(self) -> asyncio.Event:
        """The abort event of the running loop (test clients start a loop per session)."""
        loop = asyncio.get_running_loop()
        if self._abort is None or self._abort[0] is not loop:
            self._abort = (loop, asyncio.Event())
        return self._abort[1]

    async def run(self, cost: int, work: Awaitable) -> Any:
        """Admit, then await `work` within the deadline (504) unless the shutdown aborts it (503)."""
        try:
            self.enter(cost)
        except Exception:
            if asyncio.iscoroutine(work):
                work.close()  # refused before it started
            raise
        t0 = time.perf_counter()
        try:
            return await asyncio.wait_for(self._abortable(work), self.timeout_s)
        except asyncio.TimeoutError:
            if self.metrics is not None:
                self.metrics.timeouts.inc()
            raise DeadlineExceeded(f"request took over {self.timeout_s:g} s (RKD_REQUEST_TIMEOUT_S); "
                                   "its work was cancelled") from None
        finally:
            self.leave(cost, time.perf_counter() - t0)

    async def _abortable(self, work: Awaitable) -> Any:
        task = asyncio.ensure_future(work)
        abort = asyncio.ensure_future(self._abort_event().wait())
        try:
            await asyncio.wait({task, abort}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            raise ShuttingDown("server shut down before the request finished; retry", retry_after=1)
        return task.result()


def check_budget(tokens: int, queries: int, k: int, with_text: bool, settings: Any) -> None:
    """413 naming the limit when a request asks more encoder tokens or hits than one request may."""
    if tokens > settings.max_request_tokens:
        raise HTTPException(413, f"request needs {tokens} encoder tokens; the limit is {settings.max_request_tokens} "
                                 "(RKD_MAX_REQUEST_TOKENS): send fewer or shorter queries")
    hits = queries * k
    limit, name = ((settings.max_request_text_hits, "RKD_MAX_REQUEST_TEXT_HITS") if with_text
                   else (settings.max_request_hits, "RKD_MAX_REQUEST_HITS"))
    if hits > limit:
        raise HTTPException(413, f"request asks {queries} x k={k} = {hits} hits{' with text' if with_text else ''}; "
                                 f"the limit is {limit} ({name}): lower k or send fewer queries")
