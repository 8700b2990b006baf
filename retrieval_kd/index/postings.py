"""One inverted-index structure for BM25 and learned-sparse impacts: CSC postings, scoring, top-k, save/load.

Term t's postings are `docs[indptr[t]:indptr[t+1]]` (int32 corpus positions, increasing) with `impacts` beside
them; a query {term id: weight} scores sum(weight * impact) per document, accumulated in the layer's dtype in
query-term order; search keeps the top k of the documents scoring > 0, ties by corpus order. A saved folder holds
meta.json (kind, format_version, ...), the terms file (one term a line), docids.txt and postings.npz.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from retrieval_kd.artifacts import read_meta, write_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.utils import atomic_dir


def csc_postings(doc: np.ndarray, term: np.ndarray, weight: np.ndarray,
                 n_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64 [n_terms+1], docs int32, weights) of (doc, term, weight) triples, by term then doc."""
    doc, term, weight = np.asarray(doc), np.asarray(term, dtype=np.int64), np.asarray(weight)
    order = np.lexsort((doc, term))
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(term, minlength=n_terms))
    return indptr, doc[order].astype(np.int32), weight[order]


class PostingsIndex:
    """CSC postings: `terms`, `indptr` [V+1], `docs` (int32 corpus positions), `impacts`, `docids`, `meta`."""

    KIND: ClassVar[str] = "postings-index"
    FORMAT_VERSION: ClassVar[int] = 1
    TERMS_FILE: ClassVar[str] = "terms.txt"
    WHAT: ClassVar[str] = "postings index"

    def __init__(self, terms: Sequence[str], indptr: np.ndarray, docs: np.ndarray, impacts: np.ndarray,
                 docids: Sequence[str], meta: Mapping[str, Any] | None = None):
        self.terms = list(terms)
        self.term_id = {t: i for i, t in enumerate(self.terms)}
        self.indptr, self.docs, self.impacts = indptr, docs, impacts
        self.docids = list(docids)
        self.meta = dict(meta or {})

    @classmethod
    def files(cls) -> tuple[str, ...]:
        """The file names of a saved folder."""
        return ("meta.json", cls.TERMS_FILE, "docids.txt", "postings.npz")

    def lookup(self, weights: Mapping[str, float]) -> tuple[np.ndarray, list[float]]:
        """(term ids, weights) of the {term: weight} entries whose term is indexed, in the mapping's order."""
        pairs = [(self.term_id[t], w) for t, w in weights.items() if t in self.term_id]
        return np.array([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]

    def accumulate(self, ids: np.ndarray, weights: Any, dtype: Any) -> np.ndarray:
        """Per-document sum of weight * impact over the query terms `ids`, computed in `dtype`, term by term."""
        scores = np.zeros(len(self.docids), dtype=dtype)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return scores
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lens = ends - starts
        pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
        contrib = np.repeat(np.asarray(weights, dtype=dtype), lens) * self.impacts[pos].astype(dtype)
        np.add.at(scores, self.docs[pos], contrib)  # unbuffered, in posting order: query-term order per document
        return scores

    @staticmethod
    def top_k(scores: np.ndarray, k: int) -> np.ndarray:
        """Positions of the k best documents scoring > 0, best first, ties by corpus order."""
        cand = np.flatnonzero(scores > 0)
        if k <= 0:
            return cand[:0]
        if len(cand) > k:
            kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= kth]
        return cand[np.lexsort((cand, -scores[cand]))][:k]

    def saved_meta(self) -> dict[str, Any]:
        """The meta.json fields `save` writes besides kind and format_version."""
        return {**self.meta, "n_docs": len(self.docids)}

    def save(self, dest: str | Path) -> Path:
        """Write meta.json, the terms file, docids.txt and postings.npz atomically (temp folder, then rename)."""
        dest = Path(dest)
        with atomic_dir(dest) as tmp:
            (tmp / self.TERMS_FILE).write_text("\n".join(self.terms) + "\n", encoding="utf-8")
            (tmp / "docids.txt").write_text("\n".join(self.docids) + "\n", encoding="utf-8")
            np.savez(tmp / "postings.npz", indptr=self.indptr, docs=self.docs, impacts=self.impacts)
            write_meta(tmp, **{**self.saved_meta(), "kind": self.KIND, "format_version": self.FORMAT_VERSION})
        return dest

    @classmethod
    def read(cls, src: str | Path) -> PostingsIndex:
        """The parts of a folder written by `save` (any layer's), checking that they agree."""
        src = Path(src)
        for name in cls.files():
            if not (src / name).exists():
                raise BundleError(f"{src / name}: missing (not a saved {cls.WHAT} folder)")
        meta = read_meta(src, cls.KIND, cls.FORMAT_VERSION, what=cls.WHAT)
        terms = (src / cls.TERMS_FILE).read_text(encoding="utf-8").split("\n")[:-1]
        docids = (src / "docids.txt").read_text(encoding="utf-8").split("\n")[:-1]
        with np.load(src / "postings.npz") as z:
            indptr, docs, impacts = z["indptr"], z["docs"], z["impacts"]
        if len(indptr) != len(terms) + 1 or len(docs) != len(impacts) or len(docids) != meta.get("n_docs"):
            raise BundleError(f"{src}: {cls.TERMS_FILE.split('.')[0]}/postings/docids sizes disagree with meta.json")
        return PostingsIndex(terms, indptr, docs, impacts, docids, meta)

    @classmethod
    def load(cls, src: str | Path) -> PostingsIndex:
        """Open a folder written by `save`."""
        return cls.read(src)
