"""Teacher top-k in chunks: equals a brute-force numpy top-k, takes float16 memmaps, stays small; ANN recall."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def data(n: int, q: int, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Documents and queries near some of them."""
    rng = np.random.default_rng(seed)
    x = unit(rng.standard_normal((n, d)))
    return x, unit(x[rng.integers(0, n, q)] + 0.5 * rng.standard_normal((q, d)) / np.sqrt(d))


def brute(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 scores of every pair and the best-first top-k rows (the reference)."""
    s = q.astype(np.float64) @ x.astype(np.float64).T
    return s, np.argsort(-s, axis=1, kind="stable")[:, :k]


def assert_topk(scores: np.ndarray, rows: np.ndarray, s: np.ndarray, ref: np.ndarray) -> None:
    """Same rows as the reference (ties aside): best first, exact scores equal, ids equal almost everywhere."""
    got = np.take_along_axis(s, rows, 1)
    want = np.take_along_axis(s, ref, 1)
    assert rows.dtype == np.int64 and scores.dtype == np.float32 and rows.shape == ref.shape
    assert np.all(np.diff(got, axis=1) <= 1e-6)  # best first
    assert np.allclose(got, want, atol=1e-5) and np.allclose(scores, want, atol=1e-5)
    assert np.mean(rows == ref) >= 0.999
    assert all(len(set(r)) == len(r) for r in rows)  # no document twice (chunks merge cleanly)


@pytest.mark.parametrize("chunk_bytes", [256 << 20, 24 * 4 * 700])  # one chunk; 700-document chunks (< k)
def test_exact_topk_equals_brute_force(chunk_bytes, monkeypatch):
    from retrieval_kd.index import topk

    monkeypatch.setattr(topk, "QUERY_BLOCK", 37)  # several query blocks per chunk too
    x, q = data(5000, 300)
    scores, rows = topk.exact_topk(q, x, 1000, chunk_bytes=chunk_bytes)
    s, ref = brute(q, x, 1000)
    assert_topk(scores, rows, s, ref)


def test_same_rows_as_the_torch_teacher_topk():
    import torch

    from retrieval_kd.index.topk import exact_topk
    from retrieval_kd.methods.distill_vq.loop import teacher_topk

    x, q = data(4000, 200, d=64, seed=3)
    torch_rows = teacher_topk(torch.from_numpy(q), torch.from_numpy(x), 50).numpy()
    _, rows = exact_topk(q, x, 50, chunk_bytes=64 * 4 * 1000)
    s, _ = brute(q, x, 50)
    assert np.mean(rows == torch_rows) >= 0.999
    assert np.allclose(np.take_along_axis(s, rows, 1), np.take_along_axis(s, torch_rows, 1), atol=1e-5)


def test_float16_memmap_documents(tmp_path):
    from retrieval_kd.index.topk import exact_topk

    x, q = data(3000, 100)
    mm = np.memmap(tmp_path / "docs.f16", dtype=np.float16, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    docs = np.memmap(tmp_path / "docs.f16", dtype=np.float16, mode="r", shape=x.shape)
    scores, rows = exact_topk(q, docs, 20, chunk_bytes=24 * 4 * 512)
    s, ref = brute(q, np.asarray(docs, dtype=np.float32), 20)
    assert_topk(scores, rows, s, ref)


def test_k_above_the_collection_and_shape_errors():
    from retrieval_kd.errors import RKDError
    from retrieval_kd.index.topk import exact_topk

    x, q = data(30, 5)
    scores, rows = exact_topk(q, x, 100, chunk_bytes=24 * 4 * 7)
    assert rows.shape == (5, 30) and sorted(rows[0]) == list(range(30))
    with pytest.raises(RKDError, match="same d"):
        exact_topk(q[:, :10], x, 5)


def test_never_a_queries_by_documents_matrix():
    from retrieval_kd.index.topk import exact_topk

    x, q = data(40_000, 1000, d=32)  # a full score matrix would be 160 MB
    tracemalloc.start()
    try:
        exact_topk(q, x, 10, chunk_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # one 1 MB chunk, the [Q, k] results and faiss's per-chunk answers


def test_ann_topk_recall_at_small_n():
    from retrieval_kd.index.topk import ann_topk, build_ann, exact_topk, recall_at_k

    rng = np.random.default_rng(1)
    centers = unit(rng.standard_normal((128, 32)))
    sizes = rng.lognormal(4, 1, 128).astype(int) + 1  # 128 clusters of 8..648 documents, 11562 in all
    x = unit(np.repeat(centers, sizes, 0) + 0.35 * rng.standard_normal((sizes.sum(), 32)) / np.sqrt(32))
    q = unit(x[rng.integers(0, len(x), 300)] + 0.3 * rng.standard_normal((300, 32)) / np.sqrt(32))
    _, exact = exact_topk(q, x, 50)
    index = build_ann(x.astype(np.float16))  # IVF108 (√N), SQfp16
    _, every = ann_topk(q, x, 50, nprobe=108, index=index)  # every list: exact on float16-rounded documents
    _, some = ann_topk(q, x, 50, nprobe=13, index=index)  # nlist / 8
    _, one = ann_topk(q, x, 50, nprobe=1, index=index)
    assert recall_at_k(every, exact) >= 0.995  # measured 0.998
    assert recall_at_k(some, exact) >= 0.99 and recall_at_k(some, exact, 10) >= 0.99  # measured 0.997, 0.998
    assert recall_at_k(one, exact) < 0.9  # measured 0.85: nprobe matters, so the test can fail


def test_teacher_topk_switches_to_ann_above_the_stated_size():
    from retrieval_kd.index import topk

    x, q = data(2000, 50)
    assert not topk.uses_ann(50_000, 1_000_000) and topk.uses_ann(50_001, 1_000_000)
    assert topk.uses_ann(len(q), len(x), ann_above=1e4) and not topk.uses_ann(len(q), len(x), ann_above=None)
    exact = topk.teacher_topk(q, x, 10, ann_above=None)[1]
    ann = topk.teacher_topk(q, x, 10, ann_above=1e4, nprobe=1)[1]
    assert np.array_equal(exact, topk.exact_topk(q, x, 10)[1]) and not np.array_equal(ann, exact)
