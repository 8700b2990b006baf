"""Shared reader of the on-disk inverted-index folders (BM25 and impact): meta.json, terms, docids, postings.npz."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import BundleError


def read_postings_folder(src: str | Path, kind: str, version: int, terms_file: str, what: str) -> tuple[Any, ...]:
    """(meta, terms, docids, indptr, docs, impacts) of a saved folder, checking that its parts agree."""
    src = Path(src)
    for name in ("meta.json", terms_file, "docids.txt", "postings.npz"):
        if not (src / name).exists():
            raise BundleError(f"{src / name}: missing (not a saved {what} folder)")
    meta = json.loads((src / "meta.json").read_text(encoding="utf-8"))
    if meta.get("kind") != kind or meta.get("format_version") != version:
        raise BundleError(f"{src / 'meta.json'}: kind/format_version {meta.get('kind')}/"
                          f"{meta.get('format_version')} != {kind}/{version}")
    terms = (src / terms_file).read_text(encoding="utf-8").split("\n")[:-1]
    docids = (src / "docids.txt").read_text(encoding="utf-8").split("\n")[:-1]
    with np.load(src / "postings.npz") as z:
        indptr, docs, impacts = z["indptr"], z["docs"], z["impacts"]
    if len(indptr) != len(terms) + 1 or len(docs) != len(impacts) or len(docids) != meta.get("n_docs"):
        raise BundleError(f"{src}: {terms_file.split('.')[0]}/postings/docids sizes disagree with meta.json")
    return meta, terms, docids, indptr, docs, impacts


def write_postings_folder(tmp: Path, terms_file: str, terms: list[str], docids: list[str], indptr: np.ndarray,
                          docs: np.ndarray, impacts: np.ndarray, meta: dict[str, Any]) -> None:
    """Write the parts `read_postings_folder` reads into `tmp` (the caller's atomic folder)."""
    (tmp / terms_file).write_text("\n".join(terms) + "\n", encoding="utf-8")
    (tmp / "docids.txt").write_text("\n".join(docids) + "\n", encoding="utf-8")
    np.savez(tmp / "postings.npz", indptr=indptr, docs=docs, impacts=impacts)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
