"""Distill-Retrieve-Read: dialogue → student queries → BM25 / dense retrieval → RRF fusion → optional reading."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from retrieval_kd.index.fusion import FUSIONS, Run, rrf
from retrieval_kd.methods.drr.query import WeightedQuery, query_text
from retrieval_kd.methods.drr.tagging import Dialogue, last_user

Hits = list[tuple[str, float]]


class Retriever(Protocol):
    name: str

    def search_many(self, queries: Sequence[str], k: int) -> list[Hits]: ...


class BM25Retriever:
    """The built-in BM25 index (numpy) as a retriever; a `WeightedQuery` is scored by its term weights."""

    name = "bm25"

    def __init__(self, index):
        self.index = index

    def search_many(self, queries: Sequence[str], k: int) -> list[Hits]:
        return [self.index.search(self.index.weighted(q.terms) if isinstance(q, WeightedQuery) and q.terms else q, k)
                for q in queries]


class DenseRetriever:
    """The dense teacher (or any encoder with `.encode`) over a faiss index of the corpus.

    `focus_weight` β > 0: a `WeightedQuery` with kept terms searches normalise(e(text) + β·e(kept terms)), the
    dense counterpart of the sparse term weights (the text alone rarely changes: the kept words are the question's).
    `prefix`: the encoder reads 'kept terms . text' (`query.query_text`), as the dense query student was trained.
    """

    name = "dense"

    def __init__(self, encoder, index, focus_weight: float = 0.0, prefix: bool = False):
        self.encoder, self.index, self.focus_weight, self.prefix = encoder, index, float(focus_weight), bool(prefix)

    def vectors(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors: the text's, mixed with the kept terms' when `focus_weight` > 0."""
        vec = np.asarray(self.encoder.encode([query_text(q, self.prefix) for q in queries]), dtype=np.float32)
        if self.focus_weight <= 0:
            return vec
        rows = [i for i, q in enumerate(queries) if getattr(q, "focus", ())]
        if rows:
            foc = np.asarray(self.encoder.encode([" ".join(queries[i].focus) for i in rows]), dtype=np.float32)
            vec[rows] = vec[rows] + self.focus_weight * foc
            vec[rows] /= np.linalg.norm(vec[rows], axis=1, keepdims=True).clip(1e-12)
        return vec

    def search_many(self, queries: Sequence[str], k: int) -> list[Hits]:
        if not queries:
            return []
        scores, idx = self.index.search(self.vectors(queries), k)
        return [[(self.index.docids[i], float(s)) for s, i in zip(sr, ir) if i >= 0] for sr, ir in zip(scores, idx)]


class LuceneRetriever:
    """Lucene BM25 through pyserini (optional: Java 21 + the `sparse` extra; see retrieval_kd.index.lucene)."""

    name = "lucene"

    def __init__(self, searcher):
        self.searcher = searcher  # a LuceneBM25Searcher: .search(text, k) -> (docids, scores)

    def search_many(self, queries: Sequence[str], k: int) -> list[Hits]:
        return [list(zip(*(self.searcher.search_weighted(q.terms, k) if isinstance(q, WeightedQuery) and q.terms
                           else self.searcher.search(str(q), k)))) for q in queries]


def retrieve(rewrites: Mapping[str, Sequence[str]], retriever: Retriever, k: int = 1000, rrf_k: int = 60,
             fusion: str = "rrf") -> Run:
    """One run: each id's queries searched, several queries fused by reciprocal rank fusion.

    'rrf' sums 1/(k+rank) over the queries (rewards documents every query finds); 'rrf-max' keeps the best
    1/(k+rank) (each query's own top hits first), better when the queries name different medicines.
    """
    fuse_fn = FUSIONS[fusion]
    ids = list(rewrites)
    flat = [q for i in ids for q in rewrites[i]]
    hits = retriever.search_many(flat, k)
    run: Run = {}
    pos = 0
    for i in ids:
        n = len(rewrites[i])
        lists = hits[pos : pos + n]
        pos += n
        if n == 1:
            run[i] = dict(lists[0])
        else:
            run[i] = fuse_fn([{i: dict(h)} for h in lists], k=rrf_k, depth=k).get(i, {})
    return run


def fuse(runs: Sequence[Run], rrf_k: int = 60, depth: int = 1000) -> Run:
    """Hybrid: reciprocal rank fusion of runs from several retrievers."""
    return rrf(list(runs), k=rrf_k, depth=depth)


def top(run_row: Mapping[str, float], k: int) -> list[str]:
    """Doc ids of the k best scores (ties by id)."""
    return [d for d, _ in sorted(run_row.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def hit_at_k(run: Run, qrels: Mapping[str, Mapping[str, int]], k: int, group: Mapping[str, Any] | None = None,
             rel: int = 1) -> dict[str, float]:
    """Per query: 1 if a top-k document is relevant (or, with `group`, shares a group with a relevant one)."""
    out = {}
    for qid, judged in qrels.items():
        gold = [d for d, g in judged.items() if g >= rel]
        if not gold:
            continue
        want = {group[d] for d in gold} if group is not None else set(gold)
        got = top(run.get(qid, {}), k)
        out[qid] = float(any((group[d] if group is not None else d) in want for d in got))
    return out


class DRR:
    """Rewrite → retrieve → fuse (→ read): the whole pipeline for one dialogue."""

    def __init__(self, rewriter, retrievers: Sequence[Retriever], k: int = 100, reader=None, fusion: str = "rrf"):
        self.rewriter, self.retrievers, self.k, self.reader = rewriter, list(retrievers), k, reader
        self.fusion = fusion

    def rewrite(self, dialogue: Dialogue) -> list[str]:
        return self.rewriter.rewrite(dialogue)

    def search(self, dialogue: Dialogue, k: int | None = None) -> tuple[list[str], Hits]:
        """(queries, fused top-k hits)."""
        k = k or self.k
        queries = self.rewrite(dialogue)
        runs = [retrieve({"q": queries}, r, k, fusion=self.fusion) for r in self.retrievers]
        run = runs[0] if len(runs) == 1 else fuse(runs, depth=k)
        return queries, sorted(run.get("q", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def answer(self, dialogue: Dialogue, evidence: Mapping[str, str], n: int = 5) -> dict[str, Any]:
        """Retrieve, then (with a `reader`: any object with `read(question, docs) -> str`, e.g. an LLM client) answer
        from the top-n evidence texts."""
        queries, hits = self.search(dialogue)
        docs = [evidence[d] for d, _ in hits[:n] if d in evidence]
        text = self.reader.read(last_user(dialogue), docs) if self.reader is not None else None
        return {"queries": queries, "hits": hits, "answer": text}


def mean(values: Mapping[str, float] | Sequence[float]) -> float:
    v = list(values.values()) if isinstance(values, Mapping) else list(values)
    return float(np.mean(v)) if v else 0.0
