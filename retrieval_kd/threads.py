"""Thread settings of the training and indexing processes (torch and faiss intra-op threads)."""
from __future__ import annotations

import contextlib
import os


def set_threads(n: int | None = None) -> int:
    """Set torch and faiss intra-op threads (default $RKD_THREADS or 1: fastest on this 2-vCPU box)."""
    n = int(n or os.environ.get("RKD_THREADS", 1))
    with contextlib.suppress(ImportError):
        import faiss

        faiss.omp_set_num_threads(n)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(n)
    return n
