"""faiss baselines: factory strings build, search with nprobe, save/load round trip, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval_kd import artifacts
from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.index import FaissIndex


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 32))
    x = centers[rng.integers(0, 20, 2000)] + 0.3 * rng.standard_normal((2000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, [f"d{i}" for i in range(len(x))]


def test_flat_is_exact(vectors):
    x, ids = vectors
    index = FaissIndex.build(x, ids, "Flat")
    scores, idx = index.search(x[:10], 5)
    brute = np.argsort(-(x[:10] @ x.T), axis=1)[:, :5]
    assert np.array_equal(idx, brute)
    assert np.allclose(scores, np.take_along_axis(x[:10] @ x.T, brute, 1), atol=1e-5)


@pytest.mark.parametrize("factory,code", [("IVFn,PQ8x8np", 8), ("OPQ8,IVFn,PQ8x8np", 8), ("IVF16,PQ16x8np", 16)])
def test_factories_round_trip(vectors, tmp_path, factory, code):
    x, ids = vectors
    index = FaissIndex.build(x, ids, factory, meta={"dataset": "synthetic"})
    assert index.bytes_per_vector == code
    assert index.nlist == (45 if "IVFn" in factory else 16)  # √2000 ≈ 44.7
    s1, i1 = index.search(x[:20], 10, nprobe=4)
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")
    s2, i2 = loaded.search(x[:20], 10, nprobe=4)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2)
    assert loaded.docids == ids and loaded.meta["factory"] == index.factory and loaded.meta["dataset"] == "synthetic"
    # more probes find at least as many of the exact top-10 on average
    exact = np.argsort(-(x[:20] @ x.T), axis=1)[:, :10]
    hit = lambda idx: np.mean([len(set(a) & set(b)) for a, b in zip(idx, exact)])  # noqa: E731
    assert hit(loaded.search(x[:20], 10, nprobe=45)[1]) >= hit(i2)
    opened = artifacts.load(tmp_path / "ix")  # meta.json kind "faiss-index" -> FaissIndex.load
    assert isinstance(opened, FaissIndex) and np.array_equal(opened.search(x[:20], 10, nprobe=4)[1], i1)


def test_nprobe_changes_results_without_mutating_index(vectors):
    x, ids = vectors
    index = FaissIndex.build(x, ids, "IVFn,PQ8x8np")
    _, a = index.search(x[:50], 10, nprobe=1)
    _, b = index.search(x[:50], 10, nprobe=45)
    _, c = index.search(x[:50], 10, nprobe=1)
    assert not np.array_equal(a, b) and np.array_equal(a, c)


def test_failed_save_leaves_previous_index(vectors, tmp_path, monkeypatch):
    x, ids = vectors
    FaissIndex.build(x, ids, "Flat").save(tmp_path / "ix")
    broken = FaissIndex.build(x, ids, "Flat")
    import faiss

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(OSError):
        broken.save(tmp_path / "ix")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]  # no temp folder left behind
    assert FaissIndex.load(tmp_path / "ix").index.ntotal == len(ids)


def test_errors_name_the_problem(vectors, tmp_path):
    x, ids = vectors
    with pytest.raises(RKDError, match="factory string"):
        FaissIndex.build(x, ids, "IVF,PQ")
    with pytest.raises(RKDError, match="docids"):
        FaissIndex.build(x, ids[:5], "Flat")
    FaissIndex.build(x, ids, "Flat").save(tmp_path / "ix")
    (tmp_path / "ix" / "docids.txt").write_text("only\n")
    with pytest.raises(BundleError, match="docids.txt"):
        FaissIndex.load(tmp_path / "ix")
    (tmp_path / "ix" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="index.faiss"):
        FaissIndex.load(tmp_path / "ix")
    artifacts.write_meta(tmp_path / "ix", "bm25-index", 1)
    with pytest.raises(BundleError, match=r"meta\.json: field 'kind' is 'bm25-index'"):
        FaissIndex.load(tmp_path / "ix")


def test_opq_on_too_few_vectors_is_a_clear_error_not_a_crash(vectors):
    from retrieval_kd.errors import RKDError

    x, ids = vectors
    with pytest.raises(RKDError, match="OPQ needs at least 512 training vectors, got 300"):
        FaissIndex.build(x[:300], ids[:300], "OPQ4,IVFn,PQ4x8np")
