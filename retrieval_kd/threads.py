"""Thread settings of the training and indexing processes (torch and faiss intra-op threads)."""
from __future__ import annotations

import contextlib
import os


def default_threads() -> int:
    """$RKD_THREADS when set, else every core this process may use."""
    from retrieval_kd.utils import machine_cores

    env = os.environ.get("RKD_THREADS")
    return int(env) if env else machine_cores()


def set_threads(n: int | None = None) -> int:
    """Set torch and faiss intra-op threads to `n` (default: `default_threads()`); returns the number set."""
    n = int(n or default_threads())
    with contextlib.suppress(ImportError):
        import faiss

        faiss.omp_set_num_threads(n)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(n)
    return n
