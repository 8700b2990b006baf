"""Prometheus metrics (one registry per app): requests, latencies and encoder batch sizes, per index and route.

Every label value is bounded: index = a loaded index name, "unknown" or ""; route = the route template or
"unmatched"; method = one of METHODS or "other"; status = a code the server documents, else its class ("4xx").
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
STATUSES = frozenset({200, 400, 401, 404, 405, 408, 409, 413, 422, 429, 500, 503, 504})


def method_label(method: str) -> str:
    """The method when it is a standard one, else "other"."""
    return method if method in METHODS else "other"


def status_label(code: int) -> str:
    """The code when the server documents it, else its class ("2xx" ... "5xx")."""
    return str(code) if code in STATUSES else f"{code // 100}xx"


class Metrics:
    """The server's collectors, kept in their own registry so several apps can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("rkd_requests", "HTTP requests by index, route, method and status",
                                ["index", "route", "method", "status"], registry=self.registry)
        self.latency = Histogram("rkd_request_seconds", "HTTP request latency by index and route",
                                 ["index", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("rkd_requests_in_flight", "requests being handled", registry=self.registry)
        self.batch_size = Histogram("rkd_encoder_batch_queries", "queries per encoder + index call, by index",
                                    ["index"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.search_seconds = Histogram("rkd_search_seconds", "encoder + index time per call, by index",
                                        ["index"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.indexes = Gauge("rkd_indexes_loaded", "bundles being served", registry=self.registry)
        self.healthy = Gauge("rkd_index_healthy", "1 while the index's files match its manifest, else 0", ["index"],
                             registry=self.registry)
        self.pending = Gauge("rkd_pending_queries", "queries admitted (queued or running)", registry=self.registry)
        self.rejected = Counter("rkd_rejected", "requests refused before running, by reason "
                                "(overloaded, budget, shutting_down, unavailable)", ["reason"], registry=self.registry)
        self.timeouts = Counter("rkd_deadline_exceeded", "requests answered 504 (their work cancelled)",
                                registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """Exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request (index label only for loaded index names)."""

    def __init__(self, app: Any, metrics: Metrics, is_index: Callable[[str], bool]):
        self.app = app
        self.metrics = metrics
        self.is_index = is_index

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"  # the template, never the raw path (bounded labels)
            name = (scope.get("path_params") or {}).get("name", "")
            index = name if name and self.is_index(name) else ("unknown" if name else "")
            m = self.metrics
            m.requests.labels(index, path, method_label(scope.get("method", "")), status_label(status["code"])).inc()
            m.latency.labels(index, path).observe(time.perf_counter() - t0)
