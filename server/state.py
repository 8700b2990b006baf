"""What one app serves: the loaded searchers, the worker pools, the micro-batchers, admission, health, metrics."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import HTTPException

from retrieval_kd.serving.cancel import CancelToken, run_with
from retrieval_kd.serving.runtime import init_thread
from retrieval_kd.serving.searcher import NEEDED_KIND, BundleUnavailable, Searcher, SearchResult

from .admission import Admission, check_budget
from .batching import MicroBatcher
from .metrics import Metrics
from .settings import ServerSettings

RENDER_THREADS = 2  # doc-store reads and large JSON bodies


class ServerState:
    """Searchers by index name plus the machinery that runs them off the event loop."""

    def __init__(self, settings: ServerSettings, searchers: dict[str, Searcher]):
        self.settings = settings
        self.searchers = searchers
        self.metrics = Metrics()
        self.metrics.indexes.set(len(searchers))
        for name in searchers:
            self.metrics.healthy.labels(name).set(1)
        threads = settings.runtime_threads
        self.executor = ThreadPoolExecutor(max_workers=settings.runtime_workers, thread_name_prefix="rkd-search",
                                           initializer=init_thread, initargs=(threads,))
        self.render_pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="rkd-render")
        self.check_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rkd-check")
        self.admission = Admission(settings.max_pending, settings.request_timeout_s, settings.runtime_workers,
                                   self.metrics)
        self.batchers = {
            name: MicroBatcher(s, self.executor, settings.microbatch_wait_ms / 1000.0, settings.microbatch_max,
                               slots=settings.runtime_workers, metrics=self.metrics)
            for name, s in searchers.items() if "search" in s.capabilities
        }
        self.in_flight = 0  # HTTP requests being handled (RequestGuard)
        self.last_check = 0.0

    @property
    def stopping(self) -> bool:
        """True once shutdown began: /ready answers 503, new work 503."""
        return self.admission.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self.admission.stopping = value

    def get(self, name: str, capability: str | None = None) -> Searcher:
        """The searcher called `name` (404), offering `capability` (409 naming the kind it needs), healthy (503)."""
        s = self.searchers.get(name)
        if s is None:
            raise HTTPException(404, f"unknown index {name!r}; loaded: {', '.join(sorted(self.searchers)) or 'none'}")
        if capability and capability not in s.capabilities:
            raise HTTPException(409, f"index {name} is of kind {s.kind}; {capability} needs a "
                                     f"{NEEDED_KIND[capability]} bundle")
        if capability and s.damaged:
            self.metrics.rejected.labels("unavailable").inc()
            raise BundleUnavailable(f"index {name} is unavailable: {s.damaged}; it serves again once the file "
                                    "matches its manifest")
        return s

    def check_query(self, text: str, what: str = "query") -> None:
        """422 over the schema's character limit, 413 over the byte limit (shorter ones are truncated at max_length)."""
        if len(text) > self.settings.max_query_bytes:
            raise HTTPException(422, f"{what} is {len(text)} characters; the limit is {self.settings.max_query_bytes}")
        n = len(text.encode("utf-8"))
        if n > self.settings.max_query_bytes:
            raise HTTPException(413, f"{what} is {n} bytes; the limit is {self.settings.max_query_bytes}")

    def check_k(self, k: int) -> None:
        if k > self.settings.max_k:
            raise HTTPException(422, f"k={k} is over this server's limit {self.settings.max_k}")

    async def budget(self, s: Searcher, texts: list[str], k: int, with_text: bool) -> None:
        """413 when the request's encoder tokens or hits are over budget (tokens counted off the event loop)."""
        check_budget(0, len(texts), k, with_text, self.settings)
        cap = s.max_query_tokens
        if cap is not None and len(texts) * cap <= self.settings.max_request_tokens:
            return  # even at max_length tokens each the queries fit: no need to count
        tokens = sum(await asyncio.get_running_loop().run_in_executor(self.render_pool, s.query_tokens, texts))
        try:
            check_budget(tokens, len(texts), k, with_text, self.settings)
        except HTTPException:
            self.metrics.rejected.labels("budget").inc()
            raise

    async def execute(self, cost: int, work: Any) -> Any:
        """Run the coroutine `work` admitted with `cost` queries, within the deadline (429 / 503 / 504)."""
        return await self.admission.run(cost, work)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a blocking searcher call in the worker pool; cancelling the await cancels the call's token."""
        token = CancelToken()
        fut = asyncio.get_running_loop().run_in_executor(self.executor, run_with, token, fn, *args)
        try:
            return await fut
        except asyncio.CancelledError:
            token.cancel()
            raise

    async def off_loop(self, fn: Any, *args: Any) -> Any:
        """Run a blocking helper (doc-store read, JSON serialisation) in the render pool."""
        return await asyncio.get_running_loop().run_in_executor(self.render_pool, fn, *args)

    async def search_one(self, s: Searcher, query: str, k: int, nprobe: int | None) -> SearchResult:
        """One query: through the micro-batcher when on, else its own encoder + index call."""
        if self.settings.runtime_microbatch and s.name in self.batchers:
            return await self.batchers[s.name].search(query, k, nprobe)
        res = await self.run(s.search_batch, [query], k, nprobe)
        self.metrics.batch_size.labels(s.name).observe(1)
        return res[0]

    async def check_health(self, max_age_s: float = 0.0) -> dict[str, str]:
        """{index: problem} of damaged indexes, re-checking the files when the last check is older than max_age_s."""
        if time.monotonic() - self.last_check >= max_age_s:
            self.last_check = time.monotonic()
            loop = asyncio.get_running_loop()
            for name, s in self.searchers.items():
                try:
                    problem = await loop.run_in_executor(self.check_pool, s.check)
                except Exception as e:  # noqa: BLE001 - a failed re-check makes the index unready, never /ready 500
                    why = (str(e).splitlines() or [""])[0].replace(f"{s.root}/", "")[:200]
                    problem = s.damaged = f"re-check failed ({type(e).__name__}: {why})"
                self.metrics.healthy.labels(name).set(0 if problem else 1)
        return {name: s.damaged for name, s in self.searchers.items() if s.damaged}

    async def watch_health(self) -> None:
        """Re-check the bundle files every RKD_HEALTH_INTERVAL_S until cancelled."""
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            await self.check_health()

    async def stop(self) -> None:
        """Stop the batchers (lifespan shutdown); `close()` also releases the pools and the bundles."""
        self.stopping = True
        for b in self.batchers.values():
            await b.stop()

    def close(self) -> None:
        """Release the worker pools and the searchers' files and sessions."""
        for pool in (self.executor, self.render_pool, self.check_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        for s in self.searchers.values():
            s.close()
