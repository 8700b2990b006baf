"""Indexes: faiss, BM25 and impact over one postings structure, Lucene, rank fusion, SQLite doc store."""
from retrieval_kd.index.faiss_ivfpq import FaissIndex

__all__ = ["FaissIndex"]
