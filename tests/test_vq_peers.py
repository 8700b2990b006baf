"""Same-bytes peers of the Distill-VQ benchmark: each builds, honours nprobe and stores m bytes per vector."""
from __future__ import annotations

import numpy as np
import pytest
import vq_data

from retrieval_kd.bench import distill_vq, vq_peers
from retrieval_kd.bench.vq_peers import PEERS, build_peer, factory, scann_available
from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import ConfigError, DataNotFoundError, RKDError
from retrieval_kd.methods.distill_vq.report import HeldOut

needs_scann = pytest.mark.skipif(not scann_available(), reason="optional package scann not installed (pip install scann)")
N_DOCS, DIM, N_QUERIES = 600, 64, 40


@pytest.fixture(scope="module")
def synthetic() -> tuple[HeldOut, np.ndarray]:
    """600 clustered unit vectors in 64-d, 40 noisy copies of documents as held-out queries (qrels: the source)."""
    from retrieval_kd.threads import set_threads

    set_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((24, DIM))
    docs = centres[rng.integers(0, 24, N_DOCS)] + 0.6 * rng.standard_normal((N_DOCS, DIM))
    docs = (docs / np.linalg.norm(docs, axis=1, keepdims=True)).astype(np.float32)
    src = rng.choice(N_DOCS, N_QUERIES, replace=False)
    q = (docs[src] + 0.2 * rng.standard_normal((N_QUERIES, DIM))).astype(np.float32)
    ids = [f"d{i}" for i in range(N_DOCS)]
    ds = Dataset("synthetic", [{"id": i, "contents": i} for i in ids], {f"q{j}": "q" for j in range(N_QUERIES)},
                 {f"q{j}": {ids[s]: 1} for j, s in enumerate(src)})
    return HeldOut(ds, list(ds.queries), q, docs), docs


def test_factory_strings_and_default_rows():
    assert [factory("ivfpq_fs", 8), factory("ivfpq_fs", 16)] == ["IVFn,PQ16x4fsr", "IVFn,PQ32x4fsr"]
    assert [factory("ivf_rq", 8), factory("ivf_lsq", 16)] == ["IVFn,RQ8x8", "IVFn,LSQ16x8"]
    with pytest.raises(KeyError):
        factory("scann", 8)
    # the cheap peers run by default; LSQ (minutes at 16 B) and the optional ScaNN only when asked for
    assert {"ivfpq_fs", "ivf_rq"} <= set(distill_vq.ROWS) and not {"ivf_lsq", "scann"} & set(distill_vq.ROWS)
    assert distill_vq.ROWS[:6] == ("ivfpq", "opq", "listnet", "listnet_opq", "kl", "margin_mse")


CASES = [("ivfpq_fs", 8, "IVF24,PQ16x4fsr"), ("ivfpq_fs", 16, "IVF24,PQ32x4fsr"), ("ivf_rq", 8, "IVF24,RQ8x8"),
         ("ivf_rq", 16, "IVF24,RQ16x8"), ("ivf_lsq", 8, "IVF24,LSQ8x8"),
         pytest.param("scann", 8, "scann tree24,AH4d/block x4bit", marks=needs_scann),
         pytest.param("scann", 16, "scann tree24,AH2d/block x4bit", marks=needs_scann)]


@pytest.mark.parametrize("key, m, built_as", CASES)
def test_peer_row_bytes_and_nprobe(synthetic, key, m, built_as):
    held, docs = synthetic
    index = build_peer(key, docs, held.dataset.doc_ids, m)
    assert index.factory == built_as and index.nlist == 24
    row = held.row(PEERS[key][0], index, 24, 1.0)
    narrow = held.row(PEERS[key][0], index, 1, 1.0)
    assert row["bytes/vec"] == m and row["method"] == PEERS[key][0]
    assert row["TR@10"] >= 0.5 and row["TR@10"] > narrow["TR@10"]  # nprobe reaches the IVF / tree layer
    run = index.search_run(held.qids, held.q_emb, 100, 24)
    assert all(len(r) == 100 for r in run.values()) and set(run) == set(held.qids)


def test_bytes_mismatch_is_an_error(synthetic, monkeypatch):
    held, docs = synthetic
    monkeypatch.setitem(PEERS, "ivfpq_fs", ("wrong", "IVFn,PQ{m2}x8np"))  # 2m bytes, not m
    with pytest.raises(RKDError, match="16.0 bytes per vector, expected 8"):
        build_peer("ivfpq_fs", docs, held.dataset.doc_ids, 8)


def test_check_rows_knows_the_peers(monkeypatch):
    distill_vq.check_rows(["ivfpq", "ivfpq_fs", "ivf_rq", "ivf_lsq", "listnet"])
    with pytest.raises(ConfigError, match="unknown rows: ivf_pq"):
        distill_vq.check_rows(["ivf_pq"])
    monkeypatch.setattr(distill_vq, "scann_available", lambda: False)
    with pytest.raises(ConfigError, match="pip install scann"):
        distill_vq.check_rows(["opq", "scann"])
    monkeypatch.setattr(vq_peers, "scann_available", lambda: False)
    with pytest.raises(ConfigError, match="pip install scann"):
        build_peer("scann", np.zeros((4, 8), np.float32), list("abcd"), 2)


@needs_scann
def test_scann_short_lists_are_padded_with_minus_one(synthetic):
    held, docs = synthetic
    index = build_peer("scann", docs[:300], held.dataset.doc_ids[:300], 8)
    scores, idx = index.search(docs[:3], 100, 1)  # one leaf of 17 holds fewer than 100 documents
    assert idx.shape == (3, 100) and ((idx >= 0).sum(axis=1) < 100).all() and (idx >= 0).any()
    assert np.isfinite(scores[idx >= 0]).all() and np.isneginf(scores[idx < 0]).all()
    run = index.search_run(["a", "b", "c"], docs[:3], 100, 1)
    assert [len(r) for r in run.values()] == list((idx >= 0).sum(axis=1))


@pytest.fixture(scope="module")
def cacm_slice() -> Dataset:
    """The first 800 CACM documents (the embedded demo works without shared data), qrels restricted to them."""
    try:
        return vq_data.cacm_slice(800)
    except DataNotFoundError as e:
        pytest.skip(str(e))


def test_benchmark_rows_on_cacm(cacm_slice):
    from retrieval_kd.teachers.dense import DenseEncoder

    held = HeldOut.of(cacm_slice, DenseEncoder())
    rows = ["ivfpq_fs", "ivf_rq", *(["scann"] if scann_available() else [])]
    out = distill_vq.run_size("cacm-slice800", cacm_slice, held, 8, rows, 16, 0, [])
    assert [r["method"] for r in out] == [PEERS[k][0] for k in rows]
    assert [r["factory"] for r in out][:2] == ["IVF28,PQ16x4fsr", "IVF28,RQ8x8"]
    assert all(r["bytes/vec"] == 8 and 0.2 < r["TR@10"] <= 1 and r["ms/query"] > 0 for r in out)
