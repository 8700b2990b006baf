"""Built-in impact inverted index for learned sparse vectors (numpy/scipy, no Java).

Document weights are quantised to integers, ``impact = round(w * scale)`` (scale 100 by default, as for
Anserini's impact indexes), and stored as postings per vocabulary term. A query is quantised the same way;
search accumulates ``q_impact * d_impact`` over the query's posting lists and keeps the top k. Returned scores
are the integer sums divided by ``scale**2`` (close to the float dot product). Ties break by corpus order.
Torch-free: the server loads it with `ImpactIndex.load(dir)` and searches with `search(vector, k)`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.index.postings import read_postings_folder, write_postings_folder
from retrieval_kd.utils import atomic_dir

KIND = "impact-index"
FORMAT_VERSION = 1
FILES = ("meta.json", "vocab.txt", "docids.txt", "postings.npz")


class ImpactIndex:
    """Postings per term: `indptr` [V+1], `docs` (int32 corpus positions), `impacts` (int32 quantised weights)."""

    def __init__(self, vocab: Sequence[str], indptr: np.ndarray, docs: np.ndarray, impacts: np.ndarray,
                 docids: Sequence[str], scale: float = 100.0, meta: Mapping[str, Any] | None = None):
        self.vocab = list(vocab)
        self.term_id = {t: i for i, t in enumerate(self.vocab)}
        self.indptr, self.docs, self.impacts = indptr, docs, impacts
        self.docids = list(docids)
        self.scale = float(scale)
        self.meta = dict(meta or {})

    @classmethod
    def build(cls, doc_vectors, docids: Sequence[str], vocab: Sequence[str], scale: float = 100.0,
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
        q = mat.copy()
        q.data = np.rint(q.data * scale)
        q.eliminate_zeros()
        csc = q.tocsc()
        csc.sort_indices()
        info = {"n_docs": len(docids), "n_terms": int((np.diff(csc.indptr) > 0).sum()), "n_postings": int(csc.nnz),
                **(meta or {})}
        return cls(vocab, csc.indptr.astype(np.int64), csc.indices.astype(np.int32), csc.data.astype(np.int32),
                   docids, scale, info)

    def quantize(self, query) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, integer weights) of a query: dense vector, 1-row sparse matrix or {term: weight}."""
        if isinstance(query, Mapping):
            pairs = [(self.term_id[t], w) for t, w in query.items() if t in self.term_id]
            ids = np.array([p[0] for p in pairs], dtype=np.int64)
            w = np.array([p[1] for p in pairs], dtype=np.float64)
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

    def score(self, query) -> np.ndarray:
        """Integer-accumulated scores of every document (divided by scale**2)."""
        ids, qw = self.quantize(query)
        if len(ids) == 0:
            return np.zeros(len(self.docids), dtype=np.float64)
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lens = ends - starts
        pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        contrib = np.repeat(qw, lens) * self.impacts[pos].astype(np.int64)
        acc = np.bincount(self.docs[pos], weights=contrib, minlength=len(self.docids))
        return acc / (self.scale * self.scale)

    def search(self, query, k: int = 10) -> tuple[list[str], list[float]]:
        """Top-k (docids, scores) of the documents sharing at least one term with the query."""
        scores = self.score(query)
        cand = np.flatnonzero(scores > 0)
        if len(cand) > k:
            cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
        cand = cand[np.lexsort((cand, -scores[cand]))][:k]
        return [self.docids[i] for i in cand], [float(scores[i]) for i in cand]

    def search_run(self, qids: Sequence[str], queries, k: int = 100) -> dict[str, dict[str, float]]:
        """qid -> {docid: score} for a [n_queries, vocab] matrix (row i is qids[i])."""
        import scipy.sparse as sp

        mat = sp.csr_matrix(queries)
        run = {}
        for i, qid in enumerate(qids):
            ids, scores = self.search(mat[i], k)
            run[qid] = dict(zip(ids, scores, strict=True))
        return run

    def doc_vectors(self):
        """Yield (docid, {term: impact}) for every document, in corpus order (for exports)."""
        mat = self.to_csr()
        for i, docid in enumerate(self.docids):
            lo, hi = mat.indptr[i], mat.indptr[i + 1]
            yield docid, {self.vocab[t]: int(v) for t, v in zip(mat.indices[lo:hi], mat.data[lo:hi], strict=True)}

    def to_csr(self):
        """The quantised [n_docs, vocab] integer matrix."""
        import scipy.sparse as sp

        csc = sp.csc_matrix((self.impacts, self.docs, self.indptr), shape=(len(self.docids), len(self.vocab)))
        return csc.tocsr()

    def save(self, dest: str | Path) -> Path:
        """Write meta.json, vocab.txt, docids.txt and postings.npz atomically (temp folder, then rename)."""
        dest = Path(dest)
        with atomic_dir(dest) as tmp:
            meta = {**self.meta, "kind": KIND, "format_version": FORMAT_VERSION, "scale": self.scale,
                    "n_docs": len(self.docids), "vocab_size": len(self.vocab),
                    "how": "impact = round(weight * scale); score = sum(q_impact * d_impact) / scale**2"}
            write_postings_folder(tmp, "vocab.txt", self.vocab, self.docids, self.indptr, self.docs, self.impacts, meta)
        return dest

    @classmethod
    def load(cls, src: str | Path) -> ImpactIndex:
        """Read a folder written by `save`, checking that its parts agree."""
        meta, vocab, docids, indptr, docs, impacts = read_postings_folder(src, KIND, FORMAT_VERSION, "vocab.txt",
                                                                          "impact index")
        return cls(vocab, indptr, docs, impacts, docids, meta["scale"], meta)
