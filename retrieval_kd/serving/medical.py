"""Kind "medical" (Distill-Retrieve-Read): ONNX extractive rewriter + built-in BM25 + SQLite doc store.

    medical bundle:  manifest.json  meta.json  docstore.sqlite
                     rewriter/{rewriter.onnx, tokenizer.json, meta.json (+ corrector.json)}
                     index/{meta.json, terms.txt, docids.txt, postings.npz}

Serving runs the in-process pipeline itself (`methods.drr.pipeline.DRR` over `OnnxRewriter` + `BM25Retriever`,
the same post-processing and multi-query fusion as `rkd eval medicineqa`), so served hits equal the evaluated
ones. Torch-free; `export.medical.build_medical_bundle` builds the bundle.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from retrieval_kd.errors import BundleError
from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.index.fusion import FUSIONS
from retrieval_kd.methods.drr.pipeline import DRR, BM25Retriever
from retrieval_kd.serving.manifest import MedicalManifest
from retrieval_kd.serving.rewriter import OnnxRewriter
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.serving.searcher import Searcher, SearchResult, public, stage_ms

DEFAULT_DEPTH = 1000  # per-query BM25 depth before fusion (as `rkd eval medicineqa`, k: 1000)
QUERY_SEP = "\n"  # the rewrite string: the rewriter's queries, one per line (one line in 'append' mode)


class _TimedRewriter:
    """The rewriter, recording the seconds of its last call in this thread (the pipeline calls it inside search)."""

    def __init__(self, rewriter: Any):
        self.rewriter = rewriter
        self.local = threading.local()

    def rewrite(self, dialogue: list[dict]) -> list[str]:
        t0 = time.perf_counter()
        try:
            return self.rewriter.rewrite(dialogue)
        finally:
            self.local.seconds = time.perf_counter() - t0


class MedicalSearcher(Searcher):
    """Dialogue → extractive ONNX rewriter → BM25 per query → reciprocal-rank fusion; plain BM25 search too."""

    kind = "medical"

    capabilities = frozenset({"search", "rewrite", "distill_search"})
    required_files = ("rewriter/rewriter.onnx", "rewriter/tokenizer.json", "rewriter/meta.json",
                      "index/meta.json", "index/terms.txt", "index/docids.txt", "index/postings.npz",
                      "docstore.sqlite")
    manifest_model = MedicalManifest

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        super().__init__(root, manifest, options)
        retrieval = manifest.get("retrieval") or {}
        fusion = retrieval.get("fusion", "rrf-max")
        if fusion not in FUSIONS:
            raise BundleError(f"{root / 'manifest.json'}: retrieval.fusion {fusion!r} not in {sorted(FUSIONS)}")
        self.depth = int(retrieval.get("depth", DEFAULT_DEPTH))
        self.rewriter = OnnxRewriter(root / "rewriter", options, resolve=lambda rel: self.file(f"rewriter/{rel}"))
        for rel in ("index/meta.json", "index/terms.txt", "index/docids.txt", "index/postings.npz"):
            self.file(rel)
        self.index = BM25Index.load(root / "index")
        self._timed = _TimedRewriter(self.rewriter)
        self.pipeline = DRR(self._timed, [BM25Retriever(self.index)], k=self.depth, fusion=fusion)

    def search_batch(self, queries: list[str], k: int, nprobe: int | None = None) -> list[SearchResult]:
        """Plain BM25 of each query text (no rewriting)."""
        t0 = time.perf_counter()
        found = [self.index.search(q, k) for q in queries]
        timings = stage_ms(search=time.perf_counter() - t0)
        return [SearchResult([d for d, _ in h], [s for _, s in h], extra={"timings": timings}) for h in found]

    def queries(self, dialogue: list[dict]) -> list[str]:
        """The rewriter's search queries for a dialogue."""
        return self.pipeline.rewrite(dialogue)

    def rewrite(self, dialogue: list[dict]) -> str:
        return QUERY_SEP.join(self.queries(dialogue))

    def rewrite_terms(self, dialogue: list[dict]) -> dict[str, Any]:
        """{"rewrite": the queries' lines, "text": the first (main) query's text, "terms": its weighted terms}."""
        queries = self.queries(dialogue)
        first = queries[0] if queries else ""
        terms = [{"term": t, "weight": w} for t, w in getattr(first, "terms", ())]
        return {"rewrite": QUERY_SEP.join(queries), "text": str(first), "terms": terms}

    def distill_search(self, dialogue: list[dict], k: int) -> SearchResult:
        t0 = time.perf_counter()
        queries, hits = self.pipeline.search(dialogue, max(k, self.depth))
        rewrite_s = self._timed.local.seconds
        timings = stage_ms(rewrite=rewrite_s, search=time.perf_counter() - t0 - rewrite_s)
        hits = hits[:k]
        return SearchResult([d for d, _ in hits], [s for _, s in hits],
                            extra={"rewrite": QUERY_SEP.join(queries), "queries": [str(q) for q in queries],
                                   "timings": timings})

    def info(self) -> dict[str, Any]:
        return {**super().info(), **public({"retrieval": self.manifest.get("retrieval"),
                                            "rewriter": self.manifest.get("rewriter")})}
