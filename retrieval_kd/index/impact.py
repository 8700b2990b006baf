"""Built-in impact inverted index for learned sparse vectors (numpy/scipy, no Java), over the shared postings.

Document weights are quantised to integers, ``impact = round(w * scale)`` (scale 100 by default, as for
Anserini's impact indexes), and stored as postings per vocabulary term. A query is quantised the same way;
search accumulates ``q_impact * d_impact`` in int64 over the query's posting lists and keeps the top k. Returned
scores are the integer sums divided by ``scale**2`` (close to the float dot product). Ties break by corpus order.
Torch-free: the server loads it with `ImpactIndex.load(dir)` and searches with `search(vector, k)`.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.index.postings import PostingsIndex, csc_postings

KIND = "impact-index"
FORMAT_VERSION = 1
FILES = ("meta.json", "vocab.txt", "docids.txt", "postings.npz")


class ImpactIndex(PostingsIndex):
    """Postings per term: `indptr` [V+1], `docs` (int32 corpus positions), `impacts` (int32 quantised weights)."""

    KIND = KIND
    FORMAT_VERSION = FORMAT_VERSION
    TERMS_FILE = "vocab.txt"
    WHAT = "impact index"

    def __init__(self, vocab: Sequence[str], indptr: np.ndarray, docs: np.ndarray, impacts: np.ndarray,
                 docids: Sequence[str], scale: float = 100.0, meta: Mapping[str, Any] | None = None):
        super().__init__(vocab, indptr, docs, impacts, docids, meta)
        self.scale = float(scale)

    @property
    def vocab(self) -> list[str]:
        """The vocabulary (every term, in encoder dimension order)."""
        return self.terms

    @classmethod
    def build(cls, doc_vectors: Any, docids: Sequence[str], vocab: Sequence[str], scale: float = 100.0,
              meta: Mapping[str, Any] | None = None) -> ImpactIndex:
        """Index a [n_docs, vocab] sparse (scipy) or dense matrix of non-negative weights."""
        import scipy.sparse as sp

        mat = sp.csr_matrix(doc_vectors, dtype=np.float64)
        if mat.shape[0] != len(docids):
            raise RKDError(f"{mat.shape[0]} document vectors but {len(docids)} docids")
        if mat.shape[1] != len(vocab):
            raise RKDError(f"vectors have {mat.shape[1]} dimensions but the vocabulary {len(vocab)} terms")
        if mat.nnz and mat.data.min() < 0:
            raise RKDError("impact weights must be non-negative")
        coo = mat.tocoo()
        q = np.rint(coo.data * scale)
        keep = q != 0
        indptr, docs, impacts = csc_postings(coo.row[keep], coo.col[keep], q[keep].astype(np.int32), len(vocab))
        info = {"n_docs": len(docids), "n_terms": int((np.diff(indptr) > 0).sum()), "n_postings": int(len(docs)),
                **(meta or {})}
        return cls(vocab, indptr, docs, impacts, docids, scale, info)

    def quantize(self, query: Any) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, integer weights) of a query: dense vector, 1-row sparse matrix or {term: weight}."""
        if isinstance(query, Mapping):
            ids, weights = self.lookup(query)
            w = np.array(weights, dtype=np.float64)
        elif hasattr(query, "tocsr"):
            row = query.tocsr()
            ids, w = row.indices.astype(np.int64), row.data.astype(np.float64)
        else:
            vec = np.asarray(query, dtype=np.float64).reshape(-1)
            ids = np.flatnonzero(vec > 0)
            w = vec[ids]
        qw = np.rint(w * self.scale).astype(np.int64)
        keep = qw > 0
        return ids[keep], qw[keep]

    def score(self, query: Any) -> np.ndarray:
        """Integer-accumulated scores of every document (divided by scale**2)."""
        ids, qw = self.quantize(query)
        return self.accumulate(ids, qw, np.int64) / (self.scale * self.scale)

    def search(self, query: Any, k: int = 10) -> tuple[list[str], list[float]]:
        """Top-k (docids, scores) of the documents sharing at least one term with the query."""
        scores = self.score(query)
        top = self.top_k(scores, k)
        return [self.docids[i] for i in top], [float(scores[i]) for i in top]

    def search_run(self, qids: Sequence[str], queries: Any, k: int = 100) -> dict[str, dict[str, float]]:
        """qid -> {docid: score} for a [n_queries, vocab] matrix (row i is qids[i])."""
        import scipy.sparse as sp

        mat = sp.csr_matrix(queries)
        run = {}
        for i, qid in enumerate(qids):
            ids, scores = self.search(mat[i], k)
            run[qid] = dict(zip(ids, scores, strict=True))
        return run

    def doc_vectors(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Yield (docid, {term: impact}) for every document, in corpus order (for exports)."""
        mat = self.to_csr()
        for i, docid in enumerate(self.docids):
            lo, hi = mat.indptr[i], mat.indptr[i + 1]
            yield docid, {self.terms[t]: int(v) for t, v in zip(mat.indices[lo:hi], mat.data[lo:hi], strict=True)}

    def to_csr(self) -> Any:
        """The quantised [n_docs, vocab] integer matrix."""
        import scipy.sparse as sp

        csc = sp.csc_matrix((self.impacts, self.docs, self.indptr), shape=(len(self.docids), len(self.terms)))
        return csc.tocsr()

    def saved_meta(self) -> dict[str, Any]:
        """meta.json fields besides kind/format_version: scale, sizes and how scores are made."""
        return {**self.meta, "scale": self.scale, "n_docs": len(self.docids), "vocab_size": len(self.terms),
                "how": "impact = round(weight * scale); score = sum(q_impact * d_impact) / scale**2"}

    @classmethod
    def load(cls, src: str | Path) -> ImpactIndex:
        """Read a folder written by `save`, checking that its parts agree."""
        p = cls.read(src)
        return cls(p.terms, p.indptr, p.docs, p.impacts, p.docids, p.meta["scale"], p.meta)
