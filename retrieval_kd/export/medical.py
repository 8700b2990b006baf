"""Build time for Distill-Retrieve-Read: the "medical" bundle (ONNX rewriter + BM25 + doc store)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import read_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.export.bundle import bundle_name, write_manifest
from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.index.fusion import FUSIONS
from retrieval_kd.methods.drr.rewriters import TAGGER_KIND
from retrieval_kd.serving.bundle import read_manifest
from retrieval_kd.serving.medical import DEFAULT_DEPTH, MedicalSearcher
from retrieval_kd.serving.rewriter import KIND as ONNX_REWRITER_KIND
from retrieval_kd.serving.runtime import RuntimeOptions
from retrieval_kd.utils import atomic_dir

MEASURES = ("nDCG@10", "R@100")


def _corrector(ds: Any):
    """Database vocabulary for query-term correction, as the eval recipe builds it (zh medicine names or en words)."""
    from retrieval_kd.methods.drr.safety import corrector_for

    return corrector_for(ds)


def _measure(searcher: MedicalSearcher, ds: Any) -> dict[str, float]:
    """nDCG@10 and R@100 of distill_search on the dataset's judged queries (each a one-turn dialogue)."""
    from retrieval_kd.evaluate import evaluate

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
    correct: bool = False,
    fusion: str = "rrf-max",
    depth: int = DEFAULT_DEPTH,
    k1: float = 0.9,
    b: float = 0.4,
    with_metrics: bool = True,
) -> dict[str, Any]:
    """Export (or copy) the tagger, build BM25 and the doc store over `dataset`'s corpus, write the manifest."""
    from retrieval_kd import datasets
    from retrieval_kd.export.rewriter import export_tagger
    from retrieval_kd.index.docstore import DocStore

    rewriter_dir, dst = Path(rewriter_dir), Path(dst)
    name = bundle_name(name, dst, "medical")
    if fusion not in FUSIONS:
        raise BundleError(f"fusion {fusion!r} must be one of {sorted(FUSIONS)}")
    kind = read_meta(rewriter_dir, (TAGGER_KIND, ONNX_REWRITER_KIND), what="extractive rewriter")["kind"]
    exported = kind == ONNX_REWRITER_KIND
    ds = datasets.load(str(dataset))
    with atomic_dir(dst) as tmp:
        if exported:
            shutil.copytree(rewriter_dir, tmp / "rewriter")
        else:
            zh = any(d.get("drug") for d in ds.corpus)  # zh databases: the corrector links names and aspects
            export_tagger(rewriter_dir, tmp / "rewriter", corrector=_corrector(ds) if correct or zh else None)
        rw_info = read_meta(tmp / "rewriter")
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
            s = MedicalSearcher(tmp, read_manifest(tmp, MedicalSearcher.manifest_model), RuntimeOptions())
            metrics = {**_measure(s, ds), "measured_on": ds.name, "queries": "judged queries, one-turn dialogues"}
            s.close()
        store.close()
        return write_manifest(tmp, kind="medical", name=name, metrics=metrics, **sections)
