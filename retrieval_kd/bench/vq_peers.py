"""Same-bytes peers of the Distill-VQ benchmark: faiss fast-scan PQ, additive quantizers (RQ, LSQ), ScaNN.

Every peer stores m bytes per vector (the row's size) behind an IVF / tree of nlist = √N lists searched with the
benchmark's nprobe, and no exact re-ranking (that would need more bytes):

    ivfpq_fs  IVFn,PQ{2m}x4fsr  2m 4-bit codes of the residual, faiss fast-scan (SIMD look-up tables)
    ivf_rq    IVFn,RQ{m}x8      residual quantizer, m 8-bit codebooks (beam search encoding)
    ivf_lsq   IVFn,LSQ{m}x8     local-search quantizer (slow to train: off by default)
    scann     ScaNN tree + anisotropic AH, 2m blocks of 16 centres (4 bits), residual to the leaf; optional
              (`pip install scann`)
"""
from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# key -> (row label, faiss factory with {m} = bytes and {m2} = 2 x bytes; None for ScaNN)
PEERS: dict[str, tuple[str, str | None]] = {
    "ivfpq_fs": ("faiss IVFPQ fast-scan", "IVFn,PQ{m2}x4fsr"),
    "ivf_rq": ("faiss IVF+RQ", "IVFn,RQ{m}x8"),
    "ivf_lsq": ("faiss IVF+LSQ", "IVFn,LSQ{m}x8"),
    "scann": ("ScaNN (tree+AH)", None),
}
SCANN_AQ_THRESHOLD = 0.2  # anisotropic quantization threshold ScaNN recommends for normalised dot products


def factory(key: str, m: int) -> str:
    """The faiss factory string of a faiss peer at m bytes per vector."""
    spec = PEERS[key][1]
    if spec is None:
        raise KeyError(f"peer {key!r} is not a faiss index")
    return spec.format(m=m, m2=2 * m)


def scann_available() -> bool:
    """Whether the optional `scann` package is installed."""
    return importlib.util.find_spec("scann") is not None


class ScannIndex:
    """A ScaNN searcher (tree + asymmetric hashing) behind FaissIndex's search interface."""

    def __init__(self, searcher: Any, docids: Sequence[str], dims_per_block: int, dim: int, nlist: int):
        self.searcher = searcher
        self.docids = list(docids)
        self.dims_per_block = dims_per_block
        self.dim = dim
        self.nlist = nlist
        self.factory = f"scann tree{nlist},AH{dims_per_block}d/block x4bit"

    @classmethod
    def build(cls, embeddings: np.ndarray, docids: Sequence[str], m: int, threads: int = 1) -> ScannIndex:
        """Train a dot-product ScaNN index of √N leaves and 2m 4-bit AH blocks (m bytes) on all vectors."""
        import numpy as np
        import scann

        from retrieval_kd.index.faiss_ivfpq import default_nlist

        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        n, d = x.shape
        dpb = -(-d // (2 * m))  # ceil: 2m blocks (fewer when 2m does not divide d)
        nlist = default_nlist(n)
        builder = scann.scann_ops_pybind.builder(x, 100, "dot_product")
        builder.set_n_training_threads(threads)
        builder = builder.tree(num_leaves=nlist, num_leaves_to_search=nlist, training_sample_size=n,
                               min_partition_size=1)
        searcher = builder.score_ah(dpb, anisotropic_quantization_threshold=SCANN_AQ_THRESHOLD,
                                    training_sample_size=n).build()
        return cls(searcher, docids, dpb, d, nlist)

    @property
    def bytes_per_vector(self) -> float:
        """Code size: one 4-bit centre id per block, two per byte."""
        blocks = -(-self.dim // self.dims_per_block)
        return float(-(-blocks // 2))

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores float32, row indices int64; -1 where fewer than k are found), `nprobe` leaves searched."""
        import numpy as np

        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        k = int(min(k, len(self.docids)))
        leaves = int(min(nprobe, self.nlist)) if nprobe is not None else self.nlist
        idx, scores = self.searcher.search_batched(q, final_num_neighbors=k, leaves_to_search=leaves)
        idx = np.asarray(idx, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        out_i = np.full((len(q), k), -1, dtype=np.int64)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        out_i[:, : idx.shape[1]], out_s[:, : idx.shape[1]] = idx, scores
        bad = ~np.isfinite(out_s) | (out_i >= len(self.docids))  # ScaNN pads short lists with id 0, score NaN
        out_i[bad], out_s[bad] = -1, -np.inf
        return out_s, out_i

    def search_run(self, qids: Sequence[str], queries: np.ndarray, k: int,
                   nprobe: int | None = None) -> dict[str, dict[str, float]]:
        """Search and return a run: qid -> {docid: score}."""
        from retrieval_kd.index.faiss_ivfpq import to_run

        scores, idx = self.search(queries, k, nprobe)
        return to_run(qids, scores, idx, self.docids)


def build_peer(key: str, docs: np.ndarray, docids: Sequence[str], m: int, seed: int = 0) -> Any:
    """Build one peer index at m bytes per vector (a FaissIndex, or a ScannIndex)."""
    from retrieval_kd.errors import ConfigError, RKDError

    if key not in PEERS:
        raise ConfigError(f"unknown peer {key!r}; choose from {', '.join(PEERS)}")
    if key == "scann":
        if not scann_available():
            raise ConfigError("row 'scann' needs the optional package scann (pip install scann)")
        import faiss

        index = ScannIndex.build(docs, docids, m, threads=max(1, faiss.omp_get_max_threads()))
    else:
        from retrieval_kd.index.faiss_ivfpq import FaissIndex

        index = FaissIndex.build(docs, docids, factory(key, m), seed=seed)
    if index.bytes_per_vector != m:
        raise RKDError(f"{index.factory}: {index.bytes_per_vector} bytes per vector, expected {m}")
    return index


def peer_rows(held: Any, docs: np.ndarray, docids: Sequence[str], m: int, rows: Sequence[str], nprobe: int,
              seed: int = 0) -> list[dict]:
    """HeldOut rows of the peers named in `rows` (in PEERS order) at m bytes per vector."""
    out = []
    for key in (k for k in PEERS if k in rows):
        t0 = time.perf_counter()
        index = build_peer(key, docs, docids, m, seed)
        row = held.row(PEERS[key][0], index, nprobe, time.perf_counter() - t0)
        row["factory"] = index.factory
        out.append(row)
    return out
