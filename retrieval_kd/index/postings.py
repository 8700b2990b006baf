"""Shared reader of the on-disk inverted-index folders (BM25 and impact): meta.json, terms, docids, postings.npz."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError


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
