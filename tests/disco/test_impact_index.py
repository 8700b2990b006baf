"""Built-in impact index: hand-computed scores, save/load, real SPLADE slice vs brute force, Lucene agreement."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from retrieval_kd import artifacts
from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.index.impact import ImpactIndex

VOCAB = ["cat", "dog", "fish", "bird"]


def tiny() -> ImpactIndex:
    docs = np.array([[0.504, 0.0, 1.0, 0.0],    # impacts 50, 0, 100, 0
                     [0.0, 0.2, 0.0, 0.0],      # 0, 20, 0, 0
                     [0.25, 0.1, 0.0, 0.004]],  # 25, 10, 0, 0 (0.4 rounds to 0: dropped)
                    dtype=np.float32)
    return ImpactIndex.build(sp.csr_matrix(docs), ["d0", "d1", "d2"], VOCAB, scale=100)


def test_hand_computed_scores_and_ties():
    idx = tiny()
    assert idx.meta["n_postings"] == 5
    ids, scores = idx.search({"cat": 1.0, "dog": 0.5}, k=10)  # query impacts 100, 50
    # d0: 100*50 = 5000; d2: 100*25 + 50*10 = 3000; d1: 50*20 = 1000 (then / 100**2)
    assert ids == ["d0", "d2", "d1"] and scores == pytest.approx([0.5, 0.3, 0.1])
    assert idx.search(np.array([0.0, 0.0, 0.0, 1.0]), 5) == ([], [])  # no shared term: nothing returned
    # d0: 4*50 = 200; d1: 10*20 = 200; d2: 4*25 + 10*10 = 200: a three-way tie breaks by corpus order
    ids, scores = idx.search({"dog": 0.1, "cat": 0.04}, k=2)
    assert ids == ["d0", "d1"] and scores == pytest.approx([0.02, 0.02])
    ids, _ = idx.search({"dog": 0.1, "cat": 0.03}, k=3)  # d0: 150; d1: 200; d2: 175
    assert ids == ["d1", "d2", "d0"]
    many = ImpactIndex.build(sp.csr_matrix(np.ones((40, 4))), [f"e{i}" for i in range(40)], VOCAB)
    assert many.search({"fish": 0.5}, 6)[0] == [f"e{i}" for i in range(6)]  # 40-way tie: corpus order


def test_save_load_round_trip(tmp_path):
    idx = tiny()
    idx.save(tmp_path / "imp")
    back = ImpactIndex.load(tmp_path / "imp")
    assert back.search({"cat": 1.0}, 3) == idx.search({"cat": 1.0}, 3)
    assert back.meta["kind"] == "impact-index" and back.meta["scale"] == 100
    opened = artifacts.load(tmp_path / "imp")  # meta.json kind "impact-index" -> ImpactIndex.load
    assert isinstance(opened, ImpactIndex) and opened.search({"cat": 1.0}, 3) == idx.search({"cat": 1.0}, 3)
    assert np.array_equal(opened.to_csr().toarray(), idx.to_csr().toarray()) and opened.vocab == VOCAB
    (tmp_path / "imp" / "postings.npz").unlink()
    with pytest.raises(BundleError, match="postings.npz"):
        ImpactIndex.load(tmp_path / "imp")
    with pytest.raises(RKDError):
        ImpactIndex.build(sp.csr_matrix(np.ones((2, 4))), ["only-one"], VOCAB)


def test_real_slice_matches_brute_force(mini, mini_slice, splade):
    docids, _, vecs = mini_slice
    idx = ImpactIndex.build(vecs, docids, splade.vocab)
    queries = splade.encode([mini.queries[q] for q in ("106_1", "106_2", "107_1", "1-1_3", "2-1_1")])
    qd = sp.csr_matrix(np.rint(vecs.toarray() * 100))
    for i in range(queries.shape[0]):
        qi = np.rint(queries[i].toarray()[0] * 100)
        brute = qd @ qi / 1e4
        ids, scores = idx.search(queries[i], 10)
        order = np.lexsort((np.arange(len(brute)), -brute))[: len(ids)]
        assert ids == [docids[j] for j in order]
        assert scores == pytest.approx(brute[order].tolist())
        exact = (queries[i] @ vecs.T).toarray()[0]  # the float dot product is close to the quantised one
        assert np.abs(np.array(scores) - exact[order]).max() < 0.05


@pytest.mark.java
def test_lucene_impact_search_agrees(tmp_path, mini, mini_slice, splade):
    from retrieval_kd.index import lucene

    reason = lucene.unavailable_reason()
    if reason:
        pytest.skip(f"Lucene comparison needs pyserini 1.6.0 + Java 21: {reason}")
    docids, _, vecs = mini_slice
    idx = ImpactIndex.build(vecs, docids, splade.vocab)
    lucene.build_impact_index(lucene.export_json_vectors(idx, tmp_path / "vectors"), tmp_path / "lucene")
    searcher = lucene.LuceneImpactSearcher(tmp_path / "lucene")
    assert isinstance(artifacts.load(tmp_path / "lucene"), lucene.LuceneImpactSearcher)  # collection -> searcher
    queries = splade.encode([mini.queries[q] for q in ("106_1", "106_4", "110_2", "1-1_3", "3-1_2", "5-1_1")])
    for i in range(queries.shape[0]):
        terms, weights = idx.quantize(queries[i])
        ids, scores = idx.search(queries[i], 10)
        l_ids, l_scores = searcher.search({idx.vocab[t]: int(w) for t, w in zip(terms, weights, strict=True)}, 10)
        assert l_scores == pytest.approx([s * 1e4 for s in scores])  # Lucene returns the raw integer sums
        assert l_ids == ids


@pytest.mark.java
def test_lucene_bm25_helper(tmp_path, mini_slice):
    from retrieval_kd.index import lucene

    reason = lucene.unavailable_reason()
    if reason:
        pytest.skip(f"Lucene BM25 needs pyserini 1.6.0 + Java 21: {reason}")
    docids, texts, _ = mini_slice
    lucene.build_bm25_index(texts, docids, tmp_path / "bm25")
    searcher = lucene.LuceneBM25Searcher(tmp_path / "bm25")
    assert isinstance(artifacts.load(tmp_path / "bm25"), lucene.LuceneBM25Searcher)
    for i in (0, 20, 40):  # a document's own opening words find it first
        ids, scores = searcher.search(" ".join(texts[i].split()[:12]), 5)
        assert ids[0] == docids[i] and scores == sorted(scores, reverse=True)
