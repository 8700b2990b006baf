"""What one app serves: the loaded searchers, the worker pool, the micro-batchers, the metrics."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import HTTPException

from retrieval_kd.serving.runtime import init_thread
from retrieval_kd.serving.searcher import NEEDED_KIND, Searcher, SearchResult

from .batching import MicroBatcher
from .metrics import Metrics
from .settings import ServerSettings


class ServerState:
    """Searchers by index name plus the machinery that runs them off the event loop."""

    def __init__(self, settings: ServerSettings, searchers: dict[str, Searcher]):
        self.settings = settings
        self.searchers = searchers
        self.metrics = Metrics()
        self.metrics.indexes.set(len(searchers))
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rkd-search",
                                           initializer=init_thread, initargs=(settings.threads,))
        self.batchers = {
            name: MicroBatcher(s, self.executor, settings.microbatch_wait_ms / 1000.0, settings.microbatch_max,
                               slots=settings.workers, metrics=self.metrics)
            for name, s in searchers.items() if "search" in s.capabilities
        }
        self.stopping = False

    def get(self, name: str, capability: str | None = None) -> Searcher:
        """The searcher called `name` (404), offering `capability` (409 naming the kind it needs)."""
        s = self.searchers.get(name)
        if s is None:
            raise HTTPException(404, f"unknown index {name!r}; loaded: {', '.join(sorted(self.searchers)) or 'none'}")
        if capability and capability not in s.capabilities:
            raise HTTPException(409, f"index {name} is of kind {s.kind}; {capability} needs a "
                                     f"{NEEDED_KIND[capability]} bundle")
        return s

    def check_query(self, text: str, what: str = "query") -> None:
        """413 when a text is over the byte limit (shorter ones are truncated at the tokenizer limit)."""
        n = len(text.encode("utf-8"))
        if n > self.settings.max_query_bytes:
            raise HTTPException(413, f"{what} is {n} bytes; the limit is {self.settings.max_query_bytes}")

    def check_k(self, k: int) -> None:
        if k > self.settings.max_k:
            raise HTTPException(422, f"k={k} is over this server's limit {self.settings.max_k}")

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a blocking searcher call in the worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def search_one(self, s: Searcher, query: str, k: int, nprobe: int | None) -> SearchResult:
        """One query: through the micro-batcher when on, else its own encoder + index call."""
        if self.settings.microbatch and s.name in self.batchers:
            return await self.batchers[s.name].search(query, k, nprobe)
        res = await self.run(s.search_batch, [query], k, nprobe)
        self.metrics.batch_size.labels(s.name).observe(1)
        return res[0]

    async def stop(self) -> None:
        """Stop the batchers (lifespan shutdown); `close()` also releases the pool and the bundles."""
        self.stopping = True
        for b in self.batchers.values():
            await b.stop()

    def close(self) -> None:
        """Release the worker pool and the searchers' files and sessions."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        for s in self.searchers.values():
            s.close()
