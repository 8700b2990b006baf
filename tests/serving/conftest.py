"""Fixtures of the export/server tests: a 200-document CACM slice (or a tiny inline corpus without the data),
its faiss index, one bundle built from it (one MiniLM ONNX export per session) and an app serving it."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from retrieval_kd.paths import data_root

TINY = [
    "Parallel sorting algorithms for multiprocessor computers",
    "A compiler for an algebraic language with recursive procedures",
    "Time sharing systems and the scheduling of interactive users",
    "Hash tables with open addressing and their expected search cost",
    "Numerical integration by Gaussian quadrature",
    "Garbage collection in list processing systems",
    "Syntax directed translation of programming languages",
    "Storage allocation for dynamic arrays",
    "Matrix inversion on a digital computer",
    "Information retrieval with inverted files and document vectors",
    "Operating system deadlock detection and prevention",
    "Random number generators and their statistical tests",
] * 4


def _slice(tmp: Path):
    from retrieval_kd import datasets
    from retrieval_kd.data.dataset import Dataset

    if (data_root() / "cacm").is_dir():
        ds = datasets.load("cacm")
        corpus = ds.corpus[:200]
        ids = {d["id"] for d in corpus}
        qrels = {q: {d: g for d, g in docs.items() if d in ids} for q, docs in ds.qrels.items()}
        sub = Dataset("cacm-slice", corpus, ds.queries, {q: d for q, d in qrels.items() if d}, meta=dict(ds.meta))
    else:  # no shared data: a tiny inline corpus with two judged queries
        corpus = [{"id": f"D{i}", "contents": f"{t} ({i})"} for i, t in enumerate(TINY)]
        sub = Dataset("tiny", corpus, {"1": "sorting in parallel", "2": "garbage collection"},
                      {"1": {"D0": 1, "D12": 1}, "2": {"D5": 1}})
    sub.save(tmp / "dataset")
    return sub


@pytest.fixture(scope="session")
def slice_dataset(tmp_path_factory):
    return _slice(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def slice_index(slice_dataset, tmp_path_factory) -> Path:
    """IVF8,Flat over the slice, embedded by MiniLM (cached under .cache/test)."""
    import numpy as np

    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    set_threads(1)
    emb = np.asarray(encode_corpus(DenseEncoder(max_length=128), slice_dataset, show_progress=False))
    index = FaissIndex.build(emb, slice_dataset.doc_ids, "IVF8,Flat",
                             meta={"dataset": str(slice_dataset.path), "teacher": "minilm"})
    return index.save(tmp_path_factory.mktemp("index") / "idx")


@pytest.fixture(scope="session")
def bundle(slice_index, tmp_path_factory) -> Path:
    """The dense bundle built by `build_bundle` (fp32, parity-checked at export)."""
    from retrieval_kd.export.dense import build_bundle

    dst = tmp_path_factory.mktemp("bundles") / "cacm-slice"
    build_bundle(slice_index, dst, name="cacm-slice")
    return dst


@pytest.fixture(scope="session")
def torch_encoder():
    from retrieval_kd.teachers.dense import DenseEncoder

    return DenseEncoder()


@pytest.fixture
def clone_bundle(bundle, tmp_path):
    """Copy the bundle by hard links (cheap); change files with `replace` so the original stays intact."""

    def clone(name: str = "copy") -> Path:
        dst = tmp_path / name
        shutil.copytree(bundle, dst, copy_function=os.link)
        return dst

    return clone


def replace(path: Path, data: bytes) -> None:
    """Write new bytes under `path` without touching a hard-linked original."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def replace_file():
    return replace
