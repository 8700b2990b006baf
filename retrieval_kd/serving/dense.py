"""Kind "dense": ONNX query encoder + faiss index (any factory string) + SQLite doc store."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from retrieval_kd.errors import BundleError
from retrieval_kd.index.faiss_ivfpq import FaissIndex
from retrieval_kd.serving.manifest import DenseManifest
from retrieval_kd.serving.runtime import OnnxEncoder, RuntimeOptions
from retrieval_kd.serving.searcher import Searcher, SearchResult, stage_ms


class DenseSearcher(Searcher):
    """Encode queries with onnxruntime, search faiss with inner product (or L2), return docids."""

    kind = "dense"

    capabilities = frozenset({"search"})
    required_files = ("query_encoder.onnx", "tokenizer.json", "index/index.faiss", "index/docids.txt",
                      "index/meta.json", "docstore.sqlite")
    manifest_model = DenseManifest

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        import faiss

        super().__init__(root, manifest, options)
        enc = manifest.get("encoder") or {}
        if "max_length" not in enc:
            raise BundleError(f"{root / 'manifest.json'}: encoder.max_length missing")
        self.encoder = OnnxEncoder(self.file(enc.get("file", "query_encoder.onnx")), self.file("tokenizer.json"),
                                   enc["max_length"], enc.get("pad_token"), options)
        faiss.omp_set_num_threads(int(options.threads))
        for rel in ("index/index.faiss", "index/docids.txt", "index/meta.json"):
            self.file(rel)
        self.index = FaissIndex.load(root / "index")
        if self.encoder.dim is not None and self.encoder.dim != self.index.index.d:
            raise BundleError(f"{root}: encoder output dim {self.encoder.dim} != index dim {self.index.index.d}")
        self.default_nprobe = (manifest.get("index") or {}).get("nprobe")

    def query_tokens(self, texts: list[str]) -> list[int]:
        """Encoder tokens of each text (after truncation at max_length)."""
        return self.encoder.count_tokens(texts)

    def search_batch(self, queries: list[str], k: int, nprobe: int | None = None) -> list[SearchResult]:
        """One encoder call and one faiss search for all queries."""
        if not queries:
            return []
        t0 = time.perf_counter()
        vecs, truncated = self.encoder.encode(queries)
        t1 = time.perf_counter()
        scores, idx = self.index.search(vecs, k, nprobe or self.default_nprobe)
        timings = stage_ms(encode=t1 - t0, search=time.perf_counter() - t1)
        docids = self.index.docids
        out = []
        for srow, irow, cut in zip(scores.tolist(), idx.tolist(), truncated, strict=True):
            hits = [(docids[i], s) for s, i in zip(srow, irow, strict=True) if i >= 0]
            out.append(SearchResult([h[0] for h in hits], [float(h[1]) for h in hits], cut, {"timings": timings}))
        return out

    def info(self) -> dict[str, Any]:
        return {**super().info(), "default_nprobe": self.default_nprobe, "nlist": self.index.nlist,
                "ntotal": int(self.index.index.ntotal)}
