"""Kind "medical" (Distill-Retrieve-Read): ONNX extractive rewriter + built-in BM25 + SQLite doc store.

    medical bundle:  manifest.json  meta.json  docstore.sqlite
                     rewriter/{rewriter.onnx, tokenizer.json, rewriter.json (+ corrector.json)}
                     index/{meta.json, terms.txt, docids.txt, postings.npz}

    build_medical_bundle("runs/drr-zh-tagger", "bundles/medicineqa", name="medicineqa", dataset="medicineqa",
                         tokenizer="zh-bigram")

Serving runs the in-process pipeline itself (`pipeline.drr.DRR` over `OnnxRewriter` + `BM25Retriever`, the same
post-processing and multi-query fusion as `rkd eval medicineqa`), so served hits equal the evaluated ones. The
searcher is torch-free; the builder exports a torch tagger folder (parity-checked) or copies an exported one.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import BundleError
from ..index.bm25 import BM25Index
from ..pipeline.drr import DRR, FUSIONS, BM25Retriever
from ..utils import atomic_dir
from .bundle import register_kind, valid_name, write_manifest
from .rewriter import KIND as ONNX_REWRITER_KIND
from .rewriter import OnnxRewriter
from .runtime import RuntimeOptions
from .searcher import Searcher, SearchResult

DEFAULT_DEPTH = 1000  # per-query BM25 depth before fusion (as `rkd eval medicineqa`, k: 1000)
QUERY_SEP = "\n"  # the rewrite string: the rewriter's queries, one per line (one line in 'append' mode)
MEASURES = ("nDCG@10", "R@100")


@register_kind("medical")
class MedicalSearcher(Searcher):
    """Dialogue → extractive ONNX rewriter → BM25 per query → reciprocal-rank fusion; plain BM25 search too."""

    capabilities = frozenset({"search", "rewrite", "distill_search"})
    required_files = ("rewriter/rewriter.onnx", "rewriter/tokenizer.json", "rewriter/rewriter.json",
                      "index/meta.json", "index/terms.txt", "index/docids.txt", "index/postings.npz",
                      "docstore.sqlite")

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        super().__init__(root, manifest, options)
        retrieval = manifest.get("retrieval") or {}
        fusion = retrieval.get("fusion", "rrf-max")
        if fusion not in FUSIONS:
            raise BundleError(f"{root / 'manifest.json'}: retrieval.fusion {fusion!r} not in {sorted(FUSIONS)}")
        self.depth = int(retrieval.get("depth", DEFAULT_DEPTH))
        self.rewriter = OnnxRewriter(root / "rewriter", options)
        self.index = BM25Index.load(root / "index")
        self.pipeline = DRR(self.rewriter, [BM25Retriever(self.index)], k=self.depth, fusion=fusion)

    def search_batch(self, queries: list[str], k: int, nprobe: int | None = None) -> list[SearchResult]:
        """Plain BM25 of each query text (no rewriting)."""
        return [SearchResult([d for d, _ in h], [s for _, s in h]) for h in (self.index.search(q, k) for q in queries)]

    def queries(self, dialogue: list[dict]) -> list[str]:
        """The rewriter's search queries for a dialogue."""
        return self.pipeline.rewrite(dialogue)

    def rewrite(self, dialogue: list[dict]) -> str:
        return QUERY_SEP.join(self.queries(dialogue))

    def distill_search(self, dialogue: list[dict], k: int) -> SearchResult:
        queries, hits = self.pipeline.search(dialogue, max(k, self.depth))
        hits = hits[:k]
        return SearchResult([d for d, _ in hits], [s for _, s in hits],
                            extra={"rewrite": QUERY_SEP.join(queries), "queries": queries})

    def info(self) -> dict[str, Any]:
        return {**super().info(), "retrieval": self.manifest.get("retrieval"), "rewriter": self.manifest.get("rewriter")}


def _corrector(ds: Any):
    """Database vocabulary for query-term correction, as the eval recipe builds it (zh medicine names or en words)."""
    from ..pipeline.tagging import Corrector

    if any(d.get("drug") for d in ds.corpus):
        return Corrector.for_medicines(ds.corpus)
    return Corrector.from_texts(ds.doc_texts)


def _measure(searcher: MedicalSearcher, ds: Any) -> dict[str, float]:
    """nDCG@10 and R@100 of distill_search on the dataset's judged queries (each a one-turn dialogue)."""
    from ..evaluate import evaluate

    queries = ds.judged_queries()
    if not queries:
        return {}
    run = {}
    for qid, text in queries.items():
        res = searcher.distill_search([{"role": "user", "text": text}], 100)
        run[qid] = dict(zip(res.ids, res.scores))
    res = evaluate(run, ds.qrels, list(MEASURES), rel=ds.rel_threshold)
    return {m: round(float(v), 4) for m, v in res.items()}


def build_medical_bundle(
    rewriter_dir: str | Path,
    dst: str | Path,
    *,
    name: str | None = None,
    dataset: str,
    tokenizer: str = "en",
    correct: bool = True,
    fusion: str = "rrf-max",
    depth: int = DEFAULT_DEPTH,
    k1: float = 0.9,
    b: float = 0.4,
    with_metrics: bool = True,
) -> dict[str, Any]:
    """Export (or copy) the tagger, build BM25 and the doc store over `dataset`'s corpus, write the manifest."""
    from .. import datasets
    from ..index.docstore import DocStore
    from .rewriter import export_tagger

    rewriter_dir, dst = Path(rewriter_dir), Path(dst)
    name = name or re.sub(r"[^A-Za-z0-9._-]", "-", dst.name).strip(".-") or "medical"
    if not valid_name(name):
        raise BundleError(f"bundle name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if fusion not in FUSIONS:
        raise BundleError(f"fusion {fusion!r} must be one of {sorted(FUSIONS)}")
    meta_path = rewriter_dir / "rewriter.json"
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing (not a trained or exported extractive rewriter)")
    exported = json.loads(meta_path.read_text(encoding="utf-8")).get("kind") == ONNX_REWRITER_KIND
    ds = datasets.load(str(dataset))
    with atomic_dir(dst) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be read by a server account too
        if exported:
            shutil.copytree(rewriter_dir, tmp / "rewriter")
        else:
            export_tagger(rewriter_dir, tmp / "rewriter", corrector=_corrector(ds) if correct else None)
        rw_info = json.loads((tmp / "rewriter" / "rewriter.json").read_text(encoding="utf-8"))
        BM25Index.build(ds.doc_texts, ds.doc_ids, tokenizer, k1=k1, b=b, meta={"dataset": ds.name}).save(tmp / "index")
        store = DocStore.build(tmp / "docstore.sqlite", ds.corpus)
        retrieval = {"retriever": "bm25", "tokenizer": tokenizer, "k1": k1, "b": b, "fusion": fusion, "depth": depth,
                     "documents": len(ds.corpus)}
        rewriter = {k: rw_info.get(k) for k in ("kind", "mode", "boost", "threshold", "keep", "carry", "max_length", "entity_mask",
                                                 "parity_max_abs_diff", "corrector", "source")}
        sections = {"encoder": {"file": "rewriter/rewriter.onnx", "max_length": rw_info.get("max_length")},
                    "rewriter": rewriter, "retrieval": retrieval,
                    "docstore": {"file": "docstore.sqlite", "count": len(store)},
                    "source": {"rewriter": str(rewriter_dir.resolve()), "dataset": str(dataset)}}
        metrics: dict[str, Any] = {}
        if with_metrics:
            write_manifest(tmp, kind="medical", name=name, **sections)  # provisional: lets the searcher open tmp
            s = MedicalSearcher(tmp, json.loads((tmp / "manifest.json").read_text(encoding="utf-8")),
                                RuntimeOptions())
            metrics = {**_measure(s, ds), "measured_on": ds.name, "queries": "judged queries, one-turn dialogues"}
            s.close()
        store.close()
        return write_manifest(tmp, kind="medical", name=name, metrics=metrics, **sections)
