"""Any faiss factory string (Flat, IVFn,PQmx8, OPQm,IVFn,PQmx8, ...) built, searched, saved with docids."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.artifacts import read_meta, write_meta
from retrieval_kd.errors import BundleError, RKDError
from retrieval_kd.utils import atomic_dir

KIND = "faiss-index"
FORMAT_VERSION = 1
METRICS = {"ip": 0, "l2": 1}  # faiss.METRIC_INNER_PRODUCT, faiss.METRIC_L2
ADD_ROWS = 65536  # vectors added per call
# faiss OPQ training aborts the process (free(): invalid size) on a few hundred vectors (seen at 256 and 300 with
# OPQ4/OPQ8 x 384-d, never from 400 up): refuse clearly instead
MIN_OPQ_TRAIN = 512


def default_nlist(n_docs: int) -> int:
    """nlist ≈ √N, rounded to a power of two-ish friendly integer (at least 1)."""
    return max(1, int(round(np.sqrt(n_docs))))


def expand_factory(factory: str, n_docs: int) -> str:
    """Replace 'IVF{n}' or 'IVFn' by IVF<√N>, e.g. 'OPQ8,IVFn,PQ8x8np'."""
    return factory.replace("IVF{n}", f"IVF{default_nlist(n_docs)}").replace("IVFn,", f"IVF{default_nlist(n_docs)},")


class FaissIndex:
    """A faiss index plus the docids of its rows and a meta.json describing how it was made."""

    def __init__(self, index: Any, docids: Sequence[str], factory: str, metric: str = "ip", meta: dict | None = None):
        if index.ntotal != len(docids):
            raise RKDError(f"index holds {index.ntotal} vectors but {len(docids)} docids were given")
        self.index = index
        self.docids = list(docids)
        self.factory = factory
        self.metric = metric
        self.meta = dict(meta or {})

    # ---- building ----
    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        docids: Sequence[str],
        factory: str = "Flat",
        metric: str = "ip",
        seed: int = 0,
        train_size: int | None = None,
        meta: dict | None = None,
        opq_iterations: int | None = None,
    ) -> FaissIndex:
        """Train (on all or `train_size` vectors) and fill an index from a faiss factory string.

        `opq_iterations`: alternations of an OPQ rotation's training (faiss's default, 50, when None).
        """
        import faiss

        if metric not in METRICS:
            raise RKDError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(docids):
            raise RKDError(f"embeddings shape {x.shape} does not match {len(docids)} docids")
        factory = expand_factory(factory, len(x))
        try:
            index = faiss.index_factory(x.shape[1], factory, METRICS[metric])
        except RuntimeError as e:
            raise RKDError(f"faiss cannot build factory string {factory!r}: {str(e).splitlines()[-1]}") from None
        keep = _seed_index(index, seed)
        for opq, _pq in keep:
            if opq_iterations:
                opq.niter = int(opq_iterations)
        t0 = time.perf_counter()
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            train = x if not train_size or train_size >= len(x) else x[rng.choice(len(x), train_size, replace=False)]
            if "OPQ" in factory and len(train) < MIN_OPQ_TRAIN:
                raise RKDError(f"faiss {factory!r}: OPQ needs at least {MIN_OPQ_TRAIN} training vectors, got "
                               f"{len(train)} (faiss 1.x crashes below that); use a factory without OPQ")
            index.train(train)
        for opq, _pq in keep:
            opq.pq = None  # the training PQ was ours; do not leave faiss a pointer to it
        train_s = time.perf_counter() - t0
        for start in range(0, len(x), ADD_ROWS):  # in slices: an OPQ wrapper rotates a copy of what it adds
            index.add(x[start : start + ADD_ROWS])
        info = {"train_seconds": round(train_s, 3), "seed": seed, "n_docs": len(x), "dim": x.shape[1],
                **({"opq_iterations": int(opq_iterations)} if opq_iterations and keep else {}),
                **({"train_size": int(train_size)} if train_size and train_size < len(x) else {})}
        return cls(index, docids, factory, metric, {**info, **(meta or {})})

    # ---- searching ----
    @property
    def nlist(self) -> int | None:
        """Number of IVF lists, or None for an index without an IVF layer."""
        import faiss

        ivf = faiss.try_extract_index_ivf(self.index)
        return int(ivf.nlist) if ivf is not None else None

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [n,k] float32, row indices [n,k] int64; -1 where fewer than k are found)."""
        return search_index(self.index, queries, k, nprobe)

    def search_run(
        self, qids: Sequence[str], queries: np.ndarray, k: int, nprobe: int | None = None
    ) -> dict[str, dict[str, float]]:
        """Search and return a run: qid -> {docid: score}."""
        scores, idx = self.search(queries, k, nprobe)
        return to_run(qids, scores, idx, self.docids)

    @property
    def bytes_per_vector(self) -> float:
        """Code size of one stored vector in bytes (excluding ids and inverted-list overhead)."""
        import faiss

        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            return float(ivf.code_size)
        return float(self.index.sa_code_size())

    # ---- persistence ----
    def save(self, dest: str | Path) -> Path:
        """Write index.faiss, docids.txt, meta.json to a temp folder, then rename over `dest`."""
        import faiss

        dest = Path(dest)
        with atomic_dir(dest) as tmp:
            faiss.write_index(self.index, str(tmp / "index.faiss"))
            (tmp / "docids.txt").write_text("\n".join(self.docids) + "\n", encoding="utf-8")
            write_meta(tmp, **{**self.meta, "kind": KIND, "format_version": FORMAT_VERSION, "factory": self.factory,
                               "metric": self.metric, "ntotal": int(self.index.ntotal), "dim": int(self.index.d),
                               "bytes_per_vector": self.bytes_per_vector})
        return dest

    @classmethod
    def load(cls, src: str | Path, mmap: bool = False) -> FaissIndex:
        """Read a folder written by `save`, checking that its parts agree."""
        import faiss

        src = Path(src)
        for name in ("index.faiss", "docids.txt", "meta.json"):
            if not (src / name).exists():
                raise BundleError(f"{src / name}: missing (not a saved faiss index folder)")
        meta = read_meta(src, KIND, FORMAT_VERSION, what="faiss index")
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(src / "index.faiss"), flags)
        except RuntimeError as e:
            raise BundleError(f"{src / 'index.faiss'}: unreadable faiss index ({str(e).splitlines()[-1]})") from None
        docids = (src / "docids.txt").read_text(encoding="utf-8").splitlines()
        if len(docids) != index.ntotal:
            raise BundleError(f"{src / 'docids.txt'}: {len(docids)} ids for {index.ntotal} vectors")
        return cls(index, docids, meta.get("factory", "?"), meta.get("metric", "ip"), meta)


def search_index(index: Any, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a raw faiss index, with `nprobe` passed to its IVF layer (also below an OPQ pre-transform)."""
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None]
    k = int(min(k, index.ntotal))
    if nprobe is not None and faiss.try_extract_index_ivf(index) is not None:
        params = faiss.SearchParametersIVF(nprobe=int(nprobe))
        if isinstance(index, faiss.IndexPreTransform):  # preprocessing wrappers take their sub-index's params
            params = faiss.SearchParametersPreTransform(index_params=params)
        return index.search(q, k, params=params)
    return index.search(q, k)


def to_run(qids: Sequence[str], scores: np.ndarray, idx: np.ndarray, docids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Convert faiss results into qid -> {docid: score}, skipping -1 rows."""
    run: dict[str, dict[str, float]] = {}
    for qid, srow, irow in zip(qids, scores, idx):
        run[qid] = {docids[i]: float(s) for s, i in zip(srow, irow) if i >= 0}
    return run


def _seed_index(index: Any, seed: int) -> list:
    """Make k-means inside IVF/PQ/OPQ training deterministic; returns OPQ helpers to detach after training."""
    import faiss

    keep: list = []

    def quiet(cp: Any) -> None:
        cp.seed = seed
        cp.min_points_per_centroid = 1  # small collections: silence faiss's per-subspace warning

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        quiet(ivf.cp)
        if hasattr(ivf, "pq"):
            quiet(ivf.pq.cp)
        if hasattr(ivf, "rq"):
            quiet(ivf.rq.cp)
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            vt = faiss.downcast_VectorTransform(index.chain.at(i))
            if isinstance(vt, faiss.OPQMatrix):
                pq = faiss.ProductQuantizer(vt.d_out, vt.M, 8)
                quiet(pq.cp)
                vt.pq = pq
                keep.append((vt, pq))
    return keep
