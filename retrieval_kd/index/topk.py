"""Teacher top-k by inner product over document chunks (faiss; never a queries x documents matrix in memory).

    scores, rows = exact_topk(queries, docs, 200)           # exact, docs may be a float16 memmap
    scores, rows = ann_topk(queries, docs, 200)             # IVF{√N},SQfp16 with a high nprobe
    scores, rows = teacher_topk(queries, docs, 200)         # exact up to ANN_ABOVE_PAIRS query·doc pairs, else ANN

Memory: one float32 chunk of documents (`chunk_bytes`), one block of query results, and the [Q, k] answer
(12 bytes per entry). Threads are faiss's current setting (`faiss.omp_set_num_threads`); nothing here changes it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError

DEFAULT_CHUNK_BYTES = 256 << 20  # one float32 document chunk: ~174k documents of d=384
QUERY_BLOCK = 16384  # queries searched against a chunk at once (their k results: 16384·k·12 bytes)
# Exact top-k costs Q·N·d multiply-adds (BLAS): measured ~0.9e8 query·document pairs per second at d=384 on
# 2 cores (10k queries x 100k documents in 11 s), so 5e10 pairs (50k queries x 1M documents) is ~10 min there
# and ~1.5 min on 16 cores. Above that product `teacher_topk` takes the ANN path (IVF√N,SQfp16, nprobe nlist/8).
ANN_ABOVE_PAIRS = 5e10


def _as_f32(x: Any) -> np.ndarray:
    """A C-contiguous float32 view or copy (a float16 memmap slice is cast here, one chunk at a time)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def _check(queries: Any, docs: Any, k: int) -> tuple[np.ndarray, int]:
    """Queries as float32 and k clipped to the number of documents; shape errors are RKDErrors."""
    q = _as_f32(queries)
    if q.ndim != 2 or len(docs.shape) != 2 or q.shape[1] != docs.shape[1]:
        raise RKDError(f"queries {q.shape} and documents {tuple(docs.shape)} must be [n, d] with the same d")
    if k < 1:
        raise RKDError(f"k must be >= 1, got {k}")
    return q, int(min(k, docs.shape[0]))


def doc_chunk_rows(n_docs: int, dim: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Documents per float32 chunk of at most `chunk_bytes` (at least one)."""
    return int(max(1, min(n_docs, chunk_bytes // (4 * max(1, dim)))))


def _knn(q: np.ndarray, xb: np.ndarray, k: int, gpu: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product top-k of q against one float32 chunk (CPU BLAS, or faiss-GPU when `gpu` holds resources)."""
    import faiss

    if gpu is not None:
        return faiss.knn_gpu(gpu, q, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    return faiss.knn(q, xb, k, metric=faiss.METRIC_INNER_PRODUCT)


def _gpu_resources(gpu: bool) -> Any:
    """faiss GPU resources when asked for and available (faiss-gpu build with a device), else None."""
    import faiss

    if not gpu:
        return None
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        raise RKDError("gpu=True needs a faiss GPU build and a visible GPU (this faiss has none)")
    return faiss.StandardGpuResources()


def exact_topk(
    queries: Any, docs: Any, k: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES, gpu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: (scores [Q, k] float32, document rows [Q, k] int64), best first."""
    from faiss import ResultHeap

    q, k = _check(queries, docs, k)
    n, d = docs.shape
    res = _gpu_resources(gpu)
    heap = ResultHeap(len(q), k, keep_max=True)
    step = doc_chunk_rows(n, d, chunk_bytes)
    for s in range(0, n, step):
        xb = _as_f32(docs[s : s + step])
        kk = min(k, len(xb))
        for qs in range(0, len(q), QUERY_BLOCK):
            block = q[qs : qs + QUERY_BLOCK]
            D, ids = _knn(block, xb, kk, res)
            heap.add_result_subset(np.arange(qs, qs + len(block)), D, ids + s)
    heap.finalize()
    return heap.D, heap.I


def build_ann(
    docs: Any, nlist: int | None = None, encoding: str = "SQfp16", train_size: int | None = None, seed: int = 0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Any:
    """An inner-product IVF{nlist},{encoding} index over docs, trained on a sample and filled chunk by chunk."""
    import faiss

    n, d = docs.shape
    nlist = int(nlist or max(1, round(np.sqrt(n))))
    index = faiss.index_factory(d, f"IVF{nlist},{encoding}", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    size = int(min(n, train_size or max(64 * nlist, 50_000)))
    rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    index.train(_as_f32(docs[rows]))
    step = doc_chunk_rows(n, d, chunk_bytes)
    for s in range(0, n, step):
        index.add(_as_f32(docs[s : s + step]))
    return index


def ann_topk(
    queries: Any, docs: Any, k: int, nprobe: int | None = None, index: Any = None, **build: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k (scores, rows; -1 past a query's candidates) at nprobe (default nlist/8, at least 32)."""
    import faiss

    q, k = _check(queries, docs, k)
    index = index if index is not None else build_ann(docs, **build)
    ivf = faiss.extract_index_ivf(index)
    params = faiss.SearchParametersIVF(nprobe=int(min(ivf.nlist, nprobe or max(32, ivf.nlist // 8))))
    D = np.empty((len(q), k), dtype=np.float32)
    ids = np.empty((len(q), k), dtype=np.int64)
    for qs in range(0, len(q), QUERY_BLOCK):
        D[qs : qs + QUERY_BLOCK], ids[qs : qs + QUERY_BLOCK] = index.search(q[qs : qs + QUERY_BLOCK], k,
                                                                            params=params)
    return D, ids


def uses_ann(n_queries: int, n_docs: int, ann_above: float | None = ANN_ABOVE_PAIRS) -> bool:
    """Whether `teacher_topk` takes the ANN path for this many queries and documents."""
    return ann_above is not None and float(n_queries) * float(n_docs) > ann_above


def teacher_topk(
    queries: Any, docs: Any, k: int, ann_above: float | None = ANN_ABOVE_PAIRS, nprobe: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES, gpu: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k, or `ann_topk` when queries·documents exceeds `ann_above` (None: always exact)."""
    if uses_ann(len(queries), docs.shape[0], ann_above):
        return ann_topk(queries, docs, k, nprobe=nprobe, chunk_bytes=chunk_bytes)
    return exact_topk(queries, docs, k, chunk_bytes=chunk_bytes, gpu=gpu)


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int | None = None) -> float:
    """Mean share of each row's exact top-k that `found`'s top-k holds (order ignored)."""
    k = k or exact.shape[1]
    hits = [len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(found, exact)]
    return float(np.mean(hits) / k) if hits else 1.0
