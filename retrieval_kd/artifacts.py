"""Every artefact folder carries meta.json (kind, format version, how it was made); `load(path)` opens any of them.

    write_meta(folder, "faiss-index", 1, factory="OPQ8,IVF57,PQ8x8np", dataset="cacm")
    read_meta(folder, "faiss-index", 1)      # checks kind and version, errors name the file and the field
    load("runs/cacm-vq/index")               # -> FaissIndex; a dataset folder -> Dataset; a bundle -> Searcher

A new artefact kind adds one line to LOADERS (or `LOADERS.lazy(kind, "module:callable")` from outside).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval_kd.errors import BundleError
from retrieval_kd.registry import LazyRegistry
from retrieval_kd.utils import atomic_file

META = "meta.json"

# kind -> "module:callable(path, **kw)" that opens a folder of that kind
LOADERS = LazyRegistry("artifact kind", targets={
    "dataset": "retrieval_kd.data.dataset:Dataset.load",
    "faiss-index": "retrieval_kd.index.faiss_ivfpq:FaissIndex.load",
    "bm25-index": "retrieval_kd.index.bm25:BM25Index.load",
    "impact-index": "retrieval_kd.index.impact:ImpactIndex.load",
    "lucene-index": "retrieval_kd.index.lucene:open_lucene_index",
    "disco-student": "retrieval_kd.methods.disco.student:load_student",
    "disco-mixture": "retrieval_kd.methods.disco.mixture:load_mixture",
    "rewriter-tagger": "retrieval_kd.methods.drr.rewriters:ExtractiveRewriter",
    "rewriter-seq2seq": "retrieval_kd.methods.drr.rewriters:Seq2SeqRewriter",
    "drr-dense-query": "retrieval_kd.methods.drr.dense_query:open_dense_query",
    "rewriter-tagger-onnx": "retrieval_kd.serving.rewriter:OnnxRewriter",
    "onnx-encoder": "retrieval_kd.serving.runtime:open_encoder",
    "bundle": "retrieval_kd.serving.bundle:open_bundle",
}, error=BundleError)


def write_meta(folder: str | Path, kind: str, format_version: int, fields: Mapping[str, Any] | None = None,
               **more: Any) -> dict[str, Any]:
    """Write folder/meta.json atomically ({**fields, **more, kind, format_version}, sorted keys); returns it.

    A `kind` or `format_version` inside `fields` (e.g. the meta of the artefact it was loaded from) is replaced.
    """
    meta = {**(fields or {}), **more, "kind": kind, "format_version": int(format_version)}
    with atomic_file(Path(folder) / META, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        fh.write("\n")
    return meta


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; BundleError naming the file when it is missing, not JSON or not an object."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a {what} folder)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise BundleError(f"{path}: expected a JSON object")
    return obj


def read_meta(folder: str | Path, kind: str | tuple[str, ...] | None = None, format_version: int | None = None,
              what: str | None = None) -> dict[str, Any]:
    """folder/meta.json, checked against the expected kind(s) and version; BundleError naming file and field."""
    path = Path(folder) / META
    meta = read_json(path, f"saved {what or (kind if isinstance(kind, str) else 'artifact')}")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and meta.get("kind") not in kinds:
        raise BundleError(f"{path}: field 'kind' is {meta.get('kind')!r}, expected {' or '.join(map(repr, kinds))}")
    if format_version is not None and meta.get("format_version") != format_version:
        raise BundleError(f"{path}: field 'format_version' is {meta.get('format_version')!r}, this version reads "
                          f"{format_version}")
    return meta


def load(path: str | Path, **kw: Any) -> Any:
    """Open any artefact folder by the kind its meta.json names."""
    meta = read_meta(path)
    if "kind" not in meta:
        raise BundleError(f"{Path(path) / META}: field 'kind' missing")
    return LOADERS.get(meta["kind"])(path, **kw)
