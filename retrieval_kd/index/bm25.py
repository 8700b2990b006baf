"""Built-in BM25 (numpy only): English (stemmed words) and Chinese (character bigrams or jieba) tokenisers."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.index.postings import read_postings_folder, write_postings_folder
from retrieval_kd.text.tokenize import get_tokenizer
from retrieval_kd.utils import atomic_dir

FORMAT_VERSION = 1
KIND = "bm25-index"
















class BM25Index:
    """Inverted index of precomputed BM25 impacts (Lucene's formula, k1/b as Anserini's defaults)."""

    def __init__(self, terms: Sequence[str], indptr: np.ndarray, docs: np.ndarray, impacts: np.ndarray,
                 docids: Sequence[str], tokenizer: str = "en", k1: float = 0.9, b: float = 0.4,
                 meta: dict | None = None):
        self.terms = list(terms)
        self.term_id = {t: i for i, t in enumerate(self.terms)}
        self.indptr, self.docs, self.impacts = indptr, docs, impacts
        self.docids = list(docids)
        self.tokenizer_name = tokenizer
        self.tokenize = get_tokenizer(tokenizer)
        self.k1, self.b = k1, b
        self.meta = dict(meta or {})

    @classmethod
    def build(cls, texts: Iterable[str], docids: Sequence[str], tokenizer: str = "en", k1: float = 0.9,
              b: float = 0.4, meta: dict | None = None) -> BM25Index:
        """Tokenise every document and store per-posting BM25 weights idf·tf(k1+1)/(tf+k1(1-b+b·dl/avgdl))."""
        tok = get_tokenizer(tokenizer)
        counts = [Counter(tok(t)) for t in texts]
        if len(counts) != len(docids):
            raise RKDError(f"{len(counts)} texts but {len(docids)} docids")
        if not counts:
            raise RKDError("cannot build a BM25 index of zero documents")
        dl = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        avgdl = max(dl.mean(), 1e-9)
        postings: dict[str, list[tuple[int, int]]] = {}
        for d, c in enumerate(counts):
            for term, tf in c.items():
                postings.setdefault(term, []).append((d, tf))
        terms = sorted(postings)
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(postings[t]) for t in terms])
        docs = np.empty(indptr[-1], dtype=np.int32)
        tfs = np.empty(indptr[-1], dtype=np.float64)
        for i, t in enumerate(terms):
            p = postings[t]
            docs[indptr[i] : indptr[i + 1]] = [d for d, _ in p]
            tfs[indptr[i] : indptr[i + 1]] = [f for _, f in p]
        n = len(counts)
        df = np.diff(indptr).astype(np.float64)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * dl[docs] / avgdl)
        impacts = (np.repeat(idf, np.diff(indptr)) * tfs * (k1 + 1) / (tfs + norm)).astype(np.float32)
        info = {"n_docs": n, "n_terms": len(terms), "avgdl": float(avgdl), **(meta or {})}
        return cls(terms, indptr, docs, impacts, docids, tokenizer, k1, b, info)

    @property
    def vocabulary(self) -> dict[str, int]:
        """term -> document frequency."""
        return dict(zip(self.terms, np.diff(self.indptr).tolist()))

    def score(self, query: str | Mapping[str, float]) -> np.ndarray:
        """BM25 score of every document; a repeated query term counts once per occurrence."""
        weights = Counter(self.tokenize(query)) if isinstance(query, str) else query
        scores = np.zeros(len(self.docids), dtype=np.float32)
        for term, w in weights.items():
            t = self.term_id.get(term)
            if t is not None:
                lo, hi = self.indptr[t], self.indptr[t + 1]
                scores[self.docs[lo:hi]] += np.float32(w) * self.impacts[lo:hi]
        return scores

    def search(self, query: str | Mapping[str, float], k: int = 10) -> list[tuple[str, float]]:
        """Top-k (docid, score) of documents matching at least one query term."""
        scores = self.score(query)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.docids[i], float(scores[i])) for i in top if scores[i] > 0]

    def search_run(self, queries: Mapping[str, str], k: int = 1000) -> dict[str, dict[str, float]]:
        """qid -> {docid: score} for a qid -> text mapping."""
        return {qid: dict(self.search(text, k)) for qid, text in queries.items()}

    def save(self, dest: str | Path) -> Path:
        """Write meta.json, terms.txt, docids.txt and postings.npz atomically."""
        dest = Path(dest)
        with atomic_dir(dest) as tmp:
            meta = {**self.meta, "kind": KIND, "format_version": FORMAT_VERSION, "tokenizer": self.tokenizer_name,
                    "k1": self.k1, "b": self.b, "n_docs": len(self.docids), "n_terms": len(self.terms)}
            write_postings_folder(tmp, "terms.txt", self.terms, self.docids, self.indptr, self.docs, self.impacts, meta)
        return dest

    @classmethod
    def load(cls, src: str | Path) -> BM25Index:
        """Read a folder written by `save` (numpy only), checking its parts agree."""
        meta, terms, docids, indptr, docs, impacts = read_postings_folder(src, KIND, FORMAT_VERSION, "terms.txt",
                                                                          "BM25 index")
        return cls(terms, indptr, docs, impacts, docids, meta["tokenizer"], meta["k1"], meta["b"], meta)
