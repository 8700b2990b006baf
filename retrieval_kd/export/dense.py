"""`build_bundle(src, dst)`: a dense serving bundle from a saved faiss index folder (spine baseline or Distill-VQ).

The index folder's meta.json names the "dataset" (registered name or folder: the documents for the doc store
and the judged queries for the metrics) and the "teacher" (model folder; absent or "minilm" = bundled
MiniLM). A `query_encoder/` folder inside it (Distill-VQ's jointly fine-tuned encoder) is exported instead of
the teacher; its optional meta.json may set pooling, normalize and max_length.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from retrieval_kd.errors import BundleError
from retrieval_kd.export.bundle import bundle_name, documents_of, write_manifest
from retrieval_kd.export.onnx import ENCODER_FILE, export_encoder, quantize_int8
from retrieval_kd.serving.runtime import OnnxEncoder
from retrieval_kd.utils import atomic_dir

DEFAULT_NPROBE = 8
MEASURES = ("nDCG@10", "R@100")


def _encoder_source(src: Path, meta: dict, teacher: str | None) -> tuple[Any, dict]:
    qe = src / "query_encoder"
    if qe.is_dir():
        extra = json.loads((qe / "meta.json").read_text(encoding="utf-8")) if (qe / "meta.json").exists() else {}
        return qe, extra
    t = teacher or meta.get("teacher")
    if isinstance(t, dict):  # Distill-VQ writes {"model", "max_length", "pooling", "normalize"}
        return t.get("model"), {k: t[k] for k in ("max_length", "pooling", "normalize") if k in t}
    return t, {}


def measure(folder: Path, info: dict, index: Any, ds: Any, nprobe: int | None) -> dict[str, float]:
    """nDCG@10 and R@100 of the bundle's encoder + index on the dataset's judged queries."""
    from retrieval_kd.evaluate import evaluate

    queries = ds.judged_queries()
    if not queries:
        return {}
    enc = OnnxEncoder(folder / ENCODER_FILE, folder / "tokenizer.json", info["max_length"], info.get("pad_token"))
    qids = list(queries)
    vecs, _ = enc.encode([queries[q] for q in qids])
    run = index.search_run(qids, vecs, 100, nprobe)
    res = evaluate(run, ds.qrels, list(MEASURES), rel=ds.rel_threshold)
    return {m: round(float(v), 4) for m, v in res.items()}


def _quantise_and_measure(folder: Path, info: dict, index: Any, ds: Any, nprobe: int | None, int8: bool,
                          with_metrics: bool, source: Any) -> dict[str, Any]:
    """Metrics of the fp32 encoder, then (with `int8`) quantise it in place and measure again."""
    metrics: dict[str, Any] = {"source": source} if source else {}
    if with_metrics:
        metrics["fp32"] = measure(folder, info, index, ds, nprobe)
    if int8:
        quantize_int8(folder / ENCODER_FILE, folder / ENCODER_FILE)
        info["precision"] = "int8"
        if with_metrics:
            metrics["int8"] = measure(folder, info, index, ds, nprobe)
            if "nDCG@10" in metrics["fp32"]:
                metrics["int8_loss_nDCG@10"] = round(metrics["fp32"]["nDCG@10"] - metrics["int8"]["nDCG@10"], 4)
    if with_metrics:
        metrics.update(metrics.get(info["precision"], {}), measured_on=ds.name, nprobe=nprobe)
    return metrics


def build_bundle(
    src: str | Path,
    dst: str | Path,
    *,
    name: str | None = None,
    int8: bool = False,
    dataset: str | None = None,
    teacher: str | None = None,
    nprobe: int | None = None,
    with_metrics: bool = True,
) -> dict[str, Any]:
    """Export the query encoder (parity-checked), copy the index, fill the doc store, write the manifest."""
    from retrieval_kd import datasets
    from retrieval_kd.index.docstore import DocStore
    from retrieval_kd.index.faiss_ivfpq import FaissIndex

    src, dst = Path(src), Path(dst)
    index = FaissIndex.load(src)
    meta = index.meta
    ds_name = dataset or meta.get("dataset")
    if not ds_name:
        raise BundleError(f"{src / 'meta.json'}: no 'dataset' field; pass the dataset (--dataset)")
    name = bundle_name(name, dst, "bundle")
    ds = datasets.load(str(ds_name))
    docs = documents_of(index.docids, ds, src / "docids.txt")
    enc_src, enc_meta = _encoder_source(src, meta, teacher)
    nlist = index.nlist
    nprobe = nprobe or meta.get("nprobe") or (min(DEFAULT_NPROBE, nlist) if nlist else None)
    with atomic_dir(dst) as tmp:
        info = export_encoder(enc_src, tmp, pooling=enc_meta.get("pooling", meta.get("pooling", "mean")),
                              normalize=enc_meta.get("normalize", meta.get("normalize", True)),
                              max_length=enc_meta.get("max_length", meta.get("max_length", 256)),
                              atomic=False, write_meta=False)
        if info["dim"] != index.index.d:
            raise BundleError(f"{src}: encoder {info['source']} gives dim {info['dim']}, index has {index.index.d}")
        (tmp / "index").mkdir()
        for f in ("index.faiss", "docids.txt", "meta.json"):
            shutil.copyfile(src / f, tmp / "index" / f)
        store = DocStore.build(tmp / "docstore.sqlite", docs)
        metrics = _quantise_and_measure(tmp, info, index, ds, nprobe, int8, with_metrics, meta.get("metrics"))
        index_info = {"factory": index.factory, "metric": index.metric, "ntotal": int(index.index.ntotal),
                      "dim": int(index.index.d), "nlist": nlist, "nprobe": nprobe,
                      "bytes_per_vector": index.bytes_per_vector}
        manifest = write_manifest(
            tmp, kind="dense", name=name, encoder=info, index=index_info, metrics=metrics,
            docstore={"file": "docstore.sqlite", "count": len(store)},
            source={"index": str(src.resolve()), "dataset": str(ds_name), "teacher": meta.get("teacher"),
                    "query_encoder": str(enc_src) if enc_src is not None else "minilm"},
        )
        store.close()
    return manifest
