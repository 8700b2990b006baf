"""Micro-batching: concurrent /search requests on one index become one encoder call and one index search.

The collector takes the first waiting request, then gathers more until `max_batch` or until `max_wait_s` has
passed since the first one (it waits only when recent batches held more than one request, so a lone client
pays no wait); the batch runs in the worker pool while the next one gathers. At most `slots` batches run at
once (one per worker thread), so under load requests pile up and batches grow by themselves. A request whose
deadline passes drops out of its batch; when every request of a running batch has gone, its encoder call is
cancelled (`serving.cancel`).
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from concurrent.futures import Executor
from typing import Any

from retrieval_kd.serving.cancel import CancelToken, run_with
from retrieval_kd.serving.searcher import Searcher, SearchResult

from .problems import ShuttingDown


class MicroBatcher:
    """Queue of (query, k, nprobe) for one searcher; `await search(...)` returns that query's SearchResult."""

    def __init__(self, searcher: Searcher, executor: Executor, max_wait_s: float = 0.002, max_batch: int = 32,
                 slots: int = 1, metrics: Any = None):
        self.searcher = searcher
        self.executor = executor
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.slots = slots
        self.metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._sem: asyncio.Semaphore | None = None
        self._recent = 1.0  # moving average of batch sizes
        self._running: set[asyncio.Task] = set()

    def _ensure_started(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # First use, or a new event loop (test clients start one per session): start a collector on this loop.
            self._loop, self._queue = loop, asyncio.Queue()
            self._sem = asyncio.Semaphore(self.slots)
            self._task = loop.create_task(self._collect_forever(), name=f"microbatch-{self.searcher.name}")
        return self._queue

    async def search(self, query: str, k: int, nprobe: int | None) -> SearchResult:
        """Queue one query and wait for its result."""
        queue = self._ensure_started()
        fut = asyncio.get_running_loop().create_future()
        queue.put_nowait((query, k, nprobe, fut))
        return await fut

    async def _collect_forever(self) -> None:
        queue, sem = self._queue, self._sem
        while True:
            await sem.acquire()
            batch = [await queue.get()]
            # Wait for company only when recent batches had some: a lone client is not kept waiting.
            deadline = time.perf_counter() + (self.max_wait_s if self._recent > 1.5 else 0.0)
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            self._recent = 0.7 * self._recent + 0.3 * len(batch)
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(lambda t, sem=sem: (self._running.discard(t), sem.release()))

    async def _run(self, batch: list[tuple]) -> None:
        live = [item for item in batch if not item[3].done()]  # skip requests whose client went away
        groups: dict[int | None, list[tuple]] = defaultdict(list)
        for item in live:
            groups[item[2]].append(item)
        loop = asyncio.get_running_loop()
        for nprobe, items in groups.items():
            k = max(item[1] for item in items)
            t0 = time.perf_counter()
            token = _batch_token([item[3] for item in items])
            try:
                results = await loop.run_in_executor(
                    self.executor, run_with, token, self.searcher.search_batch, [item[0] for item in items], k, nprobe)
                if len(results) != len(items):
                    raise RuntimeError(f"{type(self.searcher).__name__}.search_batch returned {len(results)} "
                                       f"results for {len(items)} queries")
            except Exception as e:  # noqa: BLE001 - hand the error to each waiting request
                for item in items:
                    if not item[3].done():
                        item[3].set_exception(e)
                continue
            if self.metrics is not None:
                self.metrics.batch_size.labels(self.searcher.name).observe(len(items))
                self.metrics.search_seconds.labels(self.searcher.name).observe(time.perf_counter() - t0)
            for item, res in zip(items, results, strict=True):
                if not item[3].done():
                    item[3].set_result(res.top(item[1]))

    async def stop(self) -> None:
        """Cancel the collector and fail queued requests."""
        if self._task is not None:
            self._task.cancel()
        while self._queue is not None and not self._queue.empty():
            fut = self._queue.get_nowait()[3]
            if not fut.done():
                fut.set_exception(ShuttingDown("server is shutting down; retry", retry_after=1))


def _batch_token(futures: list[asyncio.Future]) -> CancelToken:
    """A token cancelled once every request of the batch has gone (cancelled or timed out)."""
    token = CancelToken()

    def gone(_: asyncio.Future) -> None:
        if all(f.done() for f in futures):
            token.cancel()

    for f in futures:
        f.add_done_callback(gone)
    return token

