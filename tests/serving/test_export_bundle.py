"""Bundles: manifest + hashes, round trip through open_bundle, doc store, build errors, reserved kinds."""
from __future__ import annotations

import json

import pytest

from retrieval_kd.errors import BundleError
from retrieval_kd.serving.bundle import FORMAT_VERSION, kind_class, open_bundle, resolve_bundle
from retrieval_kd.utils import sha256_file


def test_manifest_lists_every_file_with_its_hash(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["format_version"] == FORMAT_VERSION and m["kind"] == "dense" and m["name"] == "cacm-slice"
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert set(m["files"]) == on_disk - {"manifest.json", "meta.json"}
    for rel in ("query_encoder.onnx", "tokenizer.json", "index/index.faiss", "index/docids.txt", "docstore.sqlite"):
        assert m["files"][rel]["sha256"] == sha256_file(bundle / rel)
    assert m["encoder"]["parity_max_abs_diff"] <= 1e-4 and m["encoder"]["dim"] == 384
    assert m["index"]["factory"] == "IVF8,Flat" and m["index"]["nprobe"] == 8
    assert 0.0 <= m["metrics"]["nDCG@10"] <= 1.0 and m["metrics"]["fp32"]["nDCG@10"] == m["metrics"]["nDCG@10"]
    assert json.loads((bundle / "meta.json").read_text())["kind"] == "bundle"


def test_round_trip_matches_in_process_search(bundle, slice_index, slice_dataset, torch_encoder):
    """Searching the loaded bundle = torch teacher + the saved faiss index; doc store returns the corpus."""
    from retrieval_kd.index import FaissIndex

    s = open_bundle(bundle)
    queries = list(slice_dataset.queries.values())[:8]
    got = s.search_batch(queries, 10, None)
    index = FaissIndex.load(slice_index)
    _, idx = index.search(torch_encoder.encode(queries), 10, nprobe=8)
    for res, row in zip(got, idx, strict=True):
        assert res.ids == [index.docids[i] for i in row if i >= 0]
        assert res.scores == sorted(res.scores, reverse=True)
    docs = s.documents(got[0].ids[:3] + ["no-such-doc"])
    corpus = {d["id"]: d for d in slice_dataset.corpus}
    assert set(docs) == set(got[0].ids[:3])
    for d in docs.values():
        assert d["text"] == corpus[d["id"]]["contents"]
    assert s.info()["documents"] == len(slice_dataset.corpus)
    s.close()


def test_nprobe_changes_the_search(bundle):
    s = open_bundle(bundle)
    one = s.search_batch(["parallel sorting", "compilers"], 100, nprobe=1)
    all_lists = s.search_batch(["parallel sorting", "compilers"], 100, nprobe=8)  # nlist 8: every list
    assert all(len(r.ids) < 100 for r in one) and all(len(r.ids) == min(100, s.index.index.ntotal) for r in all_lists)
    s.close()


def test_docstore(tmp_path):
    from retrieval_kd.index.docstore import DocStore

    store = DocStore.build(tmp_path / "d.sqlite", [{"id": "a", "contents": "alpha", "title": "A"},
                                                   {"id": "b", "contents": "beta"}])
    assert len(store) == 2
    assert store.get(["b", "a", "zz", "a"]) == {"a": {"id": "a", "text": "alpha", "metadata": {"title": "A"}},
                                                  "b": {"id": "b", "text": "beta", "metadata": {}}}
    with pytest.raises(BundleError, match="duplicate"):
        DocStore.build(tmp_path / "e.sqlite", [{"id": "a", "contents": "x"}, {"id": "a", "contents": "y"}])
    assert not (tmp_path / "e.sqlite").exists()
    with pytest.raises(BundleError, match="not a document store"):
        (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
        DocStore(tmp_path / "junk.sqlite")


def test_build_needs_a_dataset(slice_index, tmp_path):
    import shutil

    from retrieval_kd.export.dense import build_bundle

    src = tmp_path / "idx"
    shutil.copytree(slice_index, src)
    meta = json.loads((src / "meta.json").read_text())
    meta.pop("dataset")
    (src / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="no 'dataset'"):
        build_bundle(src, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_reserved_kinds_name_their_module():
    with pytest.raises(BundleError, match="unknown bundle kind"):
        kind_class("nonsense")
    for kind in ("sparse-conversational", "medical"):
        try:
            cls = kind_class(kind)  # once the DiSCo / DRR modules exist they must register the kind
            assert cls.kind == kind
        except BundleError as e:
            assert "needs module retrieval_kd.serving." in str(e)


def test_bundle_root_cannot_be_escaped(tmp_path):
    (tmp_path / "root" / "a").mkdir(parents=True)
    assert resolve_bundle("a", tmp_path / "root") == (tmp_path / "root" / "a").resolve()
    for bad in ("../x", "a/../../x", str(tmp_path / "elsewhere")):
        with pytest.raises(BundleError, match="outside the bundle root"):
            resolve_bundle(bad, tmp_path / "root")

