"""Weighted queries: BM25 and Lucene score term weights; the weights equal the former repeated-word strings."""
from __future__ import annotations

import pytest

from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.methods.drr.pipeline import BM25Retriever, LuceneRetriever
from retrieval_kd.methods.drr.query import WeightedQuery, weighted_query

DOCS = ["morphine dosage for pain relief", "what is pain", "morphine side effects and morphine addiction",
        "ear infection in children", "is amoxicillin safe for an ear infection"]
IDS = [f"d{i}" for i in range(len(DOCS))]


def test_bm25_weights_equal_the_old_repeated_string():
    idx = BM25Index.build(DOCS, IDS, "en")
    q = weighted_query("what is morphine for pain", ["morphine", "ear infection"], boost=2)
    assert q == "what is morphine for pain ear infection"  # each word once
    old = "what is morphine for pain morphine ear infection morphine ear infection"
    (got,) = BM25Retriever(idx).search_many([q], 5)
    assert got == idx.search(old, 5)  # same documents, same scores as the repeated string
    assert idx.weighted(q.terms)["morphin"] == 3.0 and idx.weighted([("ear infections", 2)]) == {"ear": 2.0,
                                                                                                 "infect": 2.0}
    plain = BM25Retriever(idx).search_many(["what is morphine for pain"], 5)[0]
    assert plain[0][0] == "d1" and got[0][0] == "d3"  # the kept terms' weights move their documents up


def test_lucene_boosts_terms(tmp_path):
    from retrieval_kd.index import lucene

    reason = lucene.unavailable_reason()
    if reason:
        pytest.skip(reason)
    lucene.build_bm25_index(DOCS, IDS, tmp_path / "lx")
    s = lucene.LuceneBM25Searcher(tmp_path / "lx")
    q = WeightedQuery("pain morphine", [("pain", 1.0), ("morphine", 4.0)])
    assert q.lucene() == "pain morphine^4"
    ids, scores = s.search_weighted(q.terms, 5)
    flat, fscores = s.search("pain morphine", 5)
    assert ids[0] in {"d0", "d2"} and scores[0] > fscores[0]  # the boosted word weighs more
    (hits,) = LuceneRetriever(s).search_many([q], 5)
    assert [d for d, _ in hits] == ids
    assert LuceneRetriever(s).search_many([WeightedQuery("pain morphine", [])], 5)[0]  # a str subclass, unweighted
    assert s.search_weighted([("AND", 1.0), ("(pain)", 2.0)], 5)[0]  # operator words and specials are escaped
