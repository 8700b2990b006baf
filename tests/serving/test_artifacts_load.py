"""`retrieval_kd.load(path)` opens any artefact folder by the kind its meta.json names."""
from __future__ import annotations

import json

import pytest

import retrieval_kd
from retrieval_kd.artifacts import LOADERS, read_meta, write_meta
from retrieval_kd.errors import BundleError
from retrieval_kd.registry import import_target


def test_every_loader_target_resolves():
    for kind in LOADERS.names():
        assert callable(import_target(LOADERS._targets[kind])), kind


def test_load_opens_a_dataset_an_index_a_bundle_and_its_encoder(slice_dataset, slice_index, bundle):
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.index.faiss_ivfpq import FaissIndex
    from retrieval_kd.serving.searcher import Searcher

    ds = retrieval_kd.load(slice_dataset.path)
    assert isinstance(ds, Dataset) and len(ds.corpus) > 0
    assert isinstance(retrieval_kd.load(slice_index), FaissIndex)
    searcher = retrieval_kd.load(bundle)
    assert isinstance(searcher, Searcher) and searcher.kind == "dense"
    assert searcher.search_batch(["parallel sorting"], 3)[0].ids
    searcher.close()


def test_exported_encoder_folder_opens(tmp_path, minilm_path):
    from retrieval_kd.export.onnx import export_encoder
    from retrieval_kd.serving.runtime import OnnxEncoder

    export_encoder(minilm_path, tmp_path / "enc", max_length=32)
    enc = retrieval_kd.load(tmp_path / "enc")
    assert isinstance(enc, OnnxEncoder) and enc.encode(["a query"])[0].shape == (1, 384)


def test_meta_errors_name_file_and_field(tmp_path):
    with pytest.raises(BundleError, match=r"meta\.json: missing"):
        retrieval_kd.load(tmp_path)
    write_meta(tmp_path, "no-such-kind", 1, note="x")
    assert json.loads((tmp_path / "meta.json").read_text()) == {"kind": "no-such-kind", "format_version": 1, "note": "x"}
    with pytest.raises(BundleError, match="unknown artifact kind 'no-such-kind'"):
        retrieval_kd.load(tmp_path)
    with pytest.raises(BundleError, match=r"field 'kind' is 'no-such-kind', expected 'dataset'"):
        read_meta(tmp_path, "dataset")
    with pytest.raises(BundleError, match=r"field 'format_version' is 1, this version reads 2"):
        read_meta(tmp_path, format_version=2)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(BundleError, match="invalid JSON"):
        read_meta(tmp_path)
