"""Indexes: faiss (flat, IVF-PQ, OPQ), built-in impact inverted index, BM25, SQLite doc store."""
from retrieval_kd.index.faiss_ivfpq import FaissIndex, load_index

__all__ = ["FaissIndex", "load_index"]
