"""Cooperative cancellation of run-time calls: the server cancels a request's token past its deadline.

A worker thread runs a searcher call inside `cancel_scope(token)`; the ONNX encoders check the scope's token
between session calls and register each call's `RunOptions`, whose `terminate` flag onnxruntime reads while it
runs, so a cancelled call stops within one operator instead of holding the worker to the end.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from retrieval_kd.errors import RKDError


class Cancelled(RKDError):
    """The call was cancelled (its deadline passed or the server is stopping)."""


class CancelToken:
    """A flag set once; running onnxruntime calls registered with `track` are told to terminate."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._runs: set[Any] = set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Set the flag and terminate the registered onnxruntime calls."""
        with self._lock:
            self._event.set()
            for run_options in self._runs:
                run_options.terminate = True

    def check(self) -> None:
        """Raise Cancelled once the token is cancelled."""
        if self._event.is_set():
            raise Cancelled("cancelled: the request's deadline passed")

    @contextlib.contextmanager
    def track(self, run_options: Any) -> Iterator[None]:
        """Register onnxruntime RunOptions for the duration of one session call."""
        with self._lock:
            if self._event.is_set():
                run_options.terminate = True
            self._runs.add(run_options)
        try:
            yield
        finally:
            with self._lock:
                self._runs.discard(run_options)


_local = threading.local()


@contextlib.contextmanager
def cancel_scope(token: CancelToken | None) -> Iterator[None]:
    """Make `token` the current thread's token while the block runs."""
    previous = getattr(_local, "token", None)
    _local.token = token
    try:
        yield
    finally:
        _local.token = previous


def current_token() -> CancelToken | None:
    """The token of the innermost `cancel_scope` on this thread (None outside one)."""
    return getattr(_local, "token", None)


def run_with(token: CancelToken | None, fn: Any, *args: Any) -> Any:
    """Call fn(*args) inside cancel_scope(token) (the target of a worker-pool job); refuse if already cancelled."""
    if token is not None:
        token.check()
    with cancel_scope(token):
        return fn(*args)
