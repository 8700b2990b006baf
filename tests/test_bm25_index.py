"""Built-in BM25: Lucene's formula by hand, tokenisers (en stems, zh bigrams / jieba), save/load, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from retrieval_kd import artifacts
from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.text.tokenize import tokenize_en, tokenize_zh_bigram, tokenize_zh_jieba

DOCS = {
    "d1": "Amoxicillin side effects include rash and diarrhea.",
    "d2": "Metformin is used for type 2 diabetes; side effects are nausea.",
    "d3": "Diabetes diet: fewer sugars, more fibre.",
    "d4": "The cat sat on the mat.",
}


def bm25_by_hand(query: str, k1: float = 0.9, b: float = 0.4) -> dict[str, float]:
    docs = {d: tokenize_en(t) for d, t in DOCS.items()}
    avgdl = sum(map(len, docs.values())) / len(docs)
    out = {}
    for d, toks in docs.items():
        s = 0.0
        for q in tokenize_en(query):
            df = sum(q in t for t in docs.values())
            tf = toks.count(q)
            if tf:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        out[d] = s
    return out


def test_tokenisers():
    assert tokenize_en("The Side-Effects of diabetes medications") == ["side", "effect", "diabet", "medic"]
    assert tokenize_zh_bigram("阿司匹林的副作用? aspirin") == ["阿司", "司匹", "匹林", "林的", "的副", "副作", "作用",
                                                            "aspirin"]
    assert tokenize_zh_bigram("药") == ["药"]
    words = tokenize_zh_jieba("阿司匹林的副作用")
    assert "副作用" in words and all(len(w) >= 1 for w in words)


def test_scores_match_lucene_formula():
    idx = BM25Index.build(DOCS.values(), list(DOCS), "en")
    for query in ("diabetes side effects", "rash", "cat mat mat"):
        want = bm25_by_hand(query)
        got = dict(zip(idx.docids, idx.score(query).tolist()))
        for d in DOCS:
            assert got[d] == pytest.approx(want[d], rel=1e-5), (query, d)
    hits = idx.search("diabetes side effects", k=10)
    assert hits[0][0] == "d2" and {d for d, _ in hits} == {"d1", "d2", "d3"}  # d4 matches nothing: not returned


def test_repeated_query_terms_count():
    idx = BM25Index.build(DOCS.values(), list(DOCS), "en")
    once, twice = idx.score("diabetes"), idx.score("diabetes diabetes")
    assert np.allclose(twice, 2 * once) and once.max() > 0


def test_save_load_roundtrip(tmp_path):
    idx = BM25Index.build(DOCS.values(), list(DOCS), "en", meta={"dataset": "inline"})
    idx.save(tmp_path / "bm25")
    back = BM25Index.load(tmp_path / "bm25")
    assert back.docids == idx.docids and back.meta["dataset"] == "inline" and back.tokenizer_name == "en"
    assert back.search_run({"q": "side effects"}, 3) == idx.search_run({"q": "side effects"}, 3)
    opened = artifacts.load(tmp_path / "bm25")  # meta.json kind "bm25-index" -> BM25Index.load
    assert isinstance(opened, BM25Index) and opened.search("side effects", 3) == idx.search("side effects", 3)
    assert sorted(p.name for p in (tmp_path / "bm25").iterdir()) == ["docids.txt", "meta.json", "postings.npz",
                                                                      "terms.txt"]
    (tmp_path / "bm25" / "terms.txt").write_text("only-one\n")
    with pytest.raises(BundleError, match="disagree"):
        BM25Index.load(tmp_path / "bm25")
    with pytest.raises(BundleError, match="missing"):
        BM25Index.load(tmp_path / "nowhere")


def test_ties_break_by_corpus_order():
    idx = BM25Index.build(["aspirin"] * 30 + ["aspirin dose"], [f"d{i}" for i in range(31)], "en")
    hits = idx.search("aspirin", 7)  # 30 equal scores above the longer d30
    assert [d for d, _ in hits] == [f"d{i}" for i in range(7)] and len({s for _, s in hits}) == 1


def test_chinese_bigrams_find_drug_names():
    docs = ["阿司匹林肠溶片\n不良反应:胃肠道反应", "氯吡格雷片\n适应症:动脉粥样硬化", "二甲双胍片\n用法用量:随餐服用"]
    idx = BM25Index.build(docs, ["a", "b", "c"], "zh-bigram")
    assert idx.search("阿司匹林有什么副作用", 1)[0][0] == "a"
    assert idx.search("氯吡格雷", 1)[0][0] == "b"


def test_errors():
    with pytest.raises(RKDError, match="unknown BM25 tokenizer"):
        BM25Index.build(["x"], ["1"], "klingon")
    with pytest.raises(RKDError, match="2 docids"):
        BM25Index.build(["x"], ["1", "2"], "en")
