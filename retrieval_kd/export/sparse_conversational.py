"""Kind "sparse-conversational" (DiSCo): ONNX conversational SPLADE query encoder + impact index + SQLite doc store.

    bundle:  manifest.json  meta.json  docstore.sqlite
             query_encoder/{query_encoder.onnx, tokenizer.json, tokenizer_config.json, student.json, meta.json}
             index/{meta.json, vocab.txt, docids.txt, postings.npz}

`query_encoder/` is the folder `students.splade.export_student_onnx` writes (read by `OnnxConversationalEncoder`);
`index/` is a saved `ImpactIndex` of the corpus under the frozen SPLADE document encoder. Serving is torch-free;
`build_conversational_bundle` (torch, lazily imported) makes a bundle from a DiSCo run or student folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError
from ..index.impact import FILES as INDEX_FILES
from ..index.impact import ImpactIndex
from .bundle import register_kind, valid_name, write_manifest
from .runtime import RuntimeOptions
from .searcher import Searcher, SearchResult

ENCODER_DIR = "query_encoder"
INDEX_DIR = "index"
QUERY_TERMS = 10  # expansion terms reported per response


@register_kind("sparse-conversational")
class ConversationalSearcher(Searcher):
    """Encode {history, utterance} with the ONNX student, search the impact index, return docids + query terms."""

    capabilities = frozenset({"conversational_search"})
    required_files = (f"{ENCODER_DIR}/query_encoder.onnx", f"{ENCODER_DIR}/tokenizer.json",
                      f"{ENCODER_DIR}/student.json", f"{ENCODER_DIR}/meta.json",
                      *(f"{INDEX_DIR}/{f}" for f in INDEX_FILES), "docstore.sqlite")

    def __init__(self, root: Path, manifest: dict[str, Any], options: RuntimeOptions):
        from ..students.splade import OnnxConversationalEncoder

        super().__init__(root, manifest, options)
        self.encoder = OnnxConversationalEncoder(self.root / ENCODER_DIR, threads=int(options.threads))
        self.index = ImpactIndex.load(self.root / INDEX_DIR)
        dim = self.encoder.encoder.dim
        if dim is not None and dim != len(self.index.vocab):
            raise BundleError(f"{root}: encoder output dim {dim} != impact index vocabulary {len(self.index.vocab)}")

    def conversational_search(self, history: list[dict], utterance: str, k: int) -> SearchResult:
        """Top-k documents for the current utterance read in its conversation."""
        vec, truncated = self.encoder.encode(history, utterance)
        ids, scores = self.index.search(vec, k)
        top = np.argsort(-vec, kind="stable")[:QUERY_TERMS]
        terms = [{"term": self.index.vocab[i], "weight": round(float(vec[i]), 4)} for i in top if vec[i] > 0]
        return SearchResult(ids, scores, bool(truncated), {"query_terms": terms})

    def info(self) -> dict[str, Any]:
        m = self.index.meta
        return {**super().info(), "n_postings": m.get("n_postings"), "vocab_size": len(self.index.vocab)}


def _student_source(src: Path) -> tuple[Path, str | None, dict]:
    """(student folder, its document encoder or None, run meta) from a DiSCo run folder or a student folder."""
    meta_path = src / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    if meta.get("kind") == "disco-student":
        return src / meta.get("student", "student"), meta.get("document_encoder"), meta
    if (src / "config.json").is_file():
        cfg = src / "student.json"
        doc = json.loads(cfg.read_text(encoding="utf-8")).get("document_encoder") if cfg.is_file() else None
        return src, doc, {}
    raise BundleError(f"{src}: neither a DiSCo run folder (meta.json kind 'disco-student') nor a model folder")


def build_conversational_bundle(
    src: str | Path,
    dst: str | Path,
    *,
    name: str,
    dataset: str | Path = "cast-mini",
    index_dir: str | Path | None = None,
    document_encoder: str | None = None,
) -> dict[str, Any]:
    """Export the student to ONNX (parity-checked), build or copy the impact index, fill the doc store, write the manifest."""
    from .. import datasets
    from ..index.docstore import DocStore
    from ..students.splade import export_student_onnx
    from ..utils import atomic_dir

    src, dst = Path(src), Path(dst)
    if not valid_name(name):
        raise BundleError(f"bundle name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    student_dir, run_doc_encoder, run_meta = _student_source(src)
    ds = datasets.load(str(dataset))
    by_id = {d["id"]: d for d in ds.corpus}
    if index_dir is not None:
        index = ImpactIndex.load(index_dir)
        missing = [d for d in index.docids if d not in by_id]
        if missing:
            raise BundleError(f"{index_dir}: {len(missing)} ids not in dataset {ds.name!r} (e.g. {missing[0]!r})")
    else:
        from ..teachers.splade import SpladeEncoder, encode_corpus

        enc = SpladeEncoder(document_encoder or run_doc_encoder)
        index = ImpactIndex.build(encode_corpus(enc, ds, show_progress=False), ds.doc_ids, enc.vocab,
                                  meta={"dataset": ds.name, "encoder": str(enc.path),
                                        "encoder_fingerprint": enc.fingerprint})
    with atomic_dir(dst) as tmp:
        tmp.chmod(0o755)  # readable by a server account
        info = export_student_onnx(student_dir, tmp / ENCODER_DIR)
        if info["dim"] != len(index.vocab):
            raise BundleError(f"{student_dir}: encoder gives dim {info['dim']}, the impact index has "
                              f"{len(index.vocab)} terms (different vocabularies)")
        if index_dir is not None:
            (tmp / INDEX_DIR).mkdir()
            for f in INDEX_FILES:
                shutil.copyfile(Path(index_dir) / f, tmp / INDEX_DIR / f)
        else:
            index.save(tmp / INDEX_DIR)
        for sub in (ENCODER_DIR, INDEX_DIR):
            (tmp / sub).chmod(0o755)  # atomic_dir's mkdtemp made them private
        store = DocStore.build(tmp / "docstore.sqlite", (by_id[d] for d in index.docids))
        index_info = {"type": "impact", "scale": index.scale, "n_docs": len(index.docids),
                      "n_postings": int(len(index.docs)), "document_encoder": index.meta.get("encoder")}
        manifest = write_manifest(
            tmp, kind="sparse-conversational", name=name, encoder=info, index=index_info,
            docstore={"file": "docstore.sqlite", "count": len(store)},
            source={"run": str(src.resolve()), "student": str(student_dir.resolve()), "dataset": str(dataset),
                    "index_dir": str(Path(index_dir).resolve()) if index_dir is not None else None,
                    "teachers": run_meta.get("teachers"), "aggregation": run_meta.get("aggregation")},
        )
        store.close()
    return manifest
