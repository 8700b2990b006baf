"""DiSCo serving: a "sparse-conversational" bundle built from a real cast-mini slice, served by a real uvicorn."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_kd.serving.process import REPO, http_json, running_server

NAME = "cast-disco"


@pytest.fixture(scope="module")
def conv_slice(shared_data, tmp_path_factory):
    """48 real cast-mini passages (CAsT 2021, iKAT and 2022 documents mixed) and one real conversation turn."""
    from retrieval_kd import datasets
    from retrieval_kd.data.dataset import Dataset

    ds = datasets.load("cast-mini")
    corpus = ds.corpus[:16] + ds.corpus[235:251] + ds.corpus[429:445]
    turn = next(t for c in ds.conversations for t in c["turns"]
                if {h["role"] for h in t["history"]} == {"user", "system"})
    sub = Dataset("cast-slice", corpus, meta=dict(ds.meta))
    sub.save(tmp_path_factory.mktemp("conv") / "dataset")
    return sub, turn


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """The SPLADE-tiny checkpoint saved as an (untrained) DiSCo student: segment ids on, 128 tokens."""
    from retrieval_kd.errors import RKDError
    from retrieval_kd.methods.disco.student import SpladeStudent
    from retrieval_kd.threads import set_threads

    set_threads(1)
    try:
        student = SpladeStudent(device="cpu", max_length=128, segments=True)
    except RKDError as e:
        pytest.skip(str(e))
    return student.save(tmp_path_factory.mktemp("student") / "student")


@pytest.fixture(scope="module")
def conv_bundle(conv_slice, student_dir, tmp_path_factory) -> Path:
    from retrieval_kd.export.conversational import build_conversational_bundle

    dst = tmp_path_factory.mktemp("conv-bundles") / NAME
    build_conversational_bundle(student_dir, dst, name=NAME, dataset=str(conv_slice[0].path))
    return dst


def _torch_ids(student_dir: Path, bundle: Path, history: list[dict], utterance: str, k: int) -> list[str]:
    """Top-k ids of the torch student's vector searched in-process in the bundle's impact index."""
    import torch

    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.methods.disco.student import SpladeStudent

    student = SpladeStudent(student_dir, device="cpu", max_length=128, segments=True)
    student.model.eval()
    with torch.no_grad():
        vec = student.forward([student.text(history, utterance)])[0].numpy()
    return ImpactIndex.load(bundle / "index").search(vec, k)[0]


def test_manifest_lists_and_verifies_every_file(conv_bundle, conv_slice, tmp_path):
    from retrieval_kd.errors import BundleError
    from retrieval_kd.serving.bundle import open_bundle, read_manifest
    from retrieval_kd.serving.conversational import ConversationalSearcher

    m = read_manifest(conv_bundle)
    assert m["kind"] == "sparse-conversational" and m["name"] == NAME
    assert set(ConversationalSearcher.required_files) <= set(m["files"])
    assert m["encoder"]["parity_max_abs_diff"] <= 1e-4 and m["docstore"]["count"] == len(conv_slice[0].corpus)
    s = open_bundle(conv_bundle)
    assert s.kind == "sparse-conversational" and s.capabilities == {"conversational_search"}
    assert s.index.docids == conv_slice[0].doc_ids
    s.close()
    bad = tmp_path / "bad"
    shutil.copytree(conv_bundle, bad)
    p = bad / "index" / "postings.npz"
    data = p.read_bytes()
    p.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one byte changed
    with pytest.raises(BundleError, match="postings.npz"):
        open_bundle(bad)


def test_served_over_http_matches_torch_student(conv_bundle, conv_slice, student_dir):
    ds, turn = conv_slice
    history = [{"role": h["role"], "text": h["text"]} for h in turn["history"]]
    want = _torch_ids(student_dir, conv_bundle, history, turn["utterance"], 5)
    url = f"/v1/indexes/{NAME}"
    with running_server([conv_bundle]) as sp:
        status, body = http_json(sp.url + url + "/conversational_search",
                                 {"history": history, "utterance": turn["utterance"], "k": 5})
        assert status == 200, body
        ids, scores = [h["id"] for h in body["hits"]], [h["score"] for h in body["hits"]]
        assert len(ids) == 5 and set(ids) <= set(ds.doc_ids)
        assert scores == sorted(scores, reverse=True) and scores[-1] > 0
        assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
        assert ids == want
        assert body["query_terms"] and body["query_terms"][0]["weight"] > 0
        status, body = http_json(sp.url + url + "/search", {"query": turn["utterance"], "k": 5})
        assert status == 409 and "dense" in str(body)
        bad_role = [{"role": "bot", "text": "hello"}]
        assert http_json(sp.url + url + "/conversational_search",
                         {"history": bad_role, "utterance": "x", "k": 5})[0] == 422
        maps = Path(f"/proc/{sp.proc.pid}/maps")
        if maps.exists():  # the uvicorn process itself: no libtorch mapped
            assert "libtorch" not in maps.read_text()


def test_server_never_imports_torch(conv_bundle, conv_slice):
    """Loading the bundle and answering a conversational search leaves torch and transformers unloaded."""
    turn = conv_slice[1]
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from server.app import create_app\n"
        f"c = TestClient(create_app([{str(conv_bundle)!r}]))\n"
        f"r = c.post('/v1/indexes/{NAME}/conversational_search', json={{'history': {turn['history']!r}, "
        f"'utterance': {turn['utterance']!r}, 'k': 3}})\n"
        "assert r.status_code == 200 and len(r.json()['hits']) == 3, r.text\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def mix_bundle(conv_slice, student_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A mixture of two real students (the second reads no responses) + the utterance encoder, as a bundle."""
    from retrieval_kd.artifacts import write_meta
    from retrieval_kd.export.conversational import build_conversational_bundle
    from retrieval_kd.methods.disco.mixing import MIX_KIND
    from retrieval_kd.methods.disco.student import SpladeStudent

    root = tmp_path_factory.mktemp("mix")
    other = SpladeStudent(device="cpu", max_length=64, segments=False, responses="none").save(root / "other")
    write_meta(root / "mixture", MIX_KIND, 1, members=[{"run": str(student_dir), "weight": 1.0},
                                                       {"run": str(other), "weight": 0.5}], utterance=0.375)
    dst = root / "cast-mix"
    build_conversational_bundle(root / "mixture", dst, name="cast-mix", dataset=str(conv_slice[0].path))
    return root / "mixture", dst


def test_mixture_bundle_keeps_parity_and_is_served(mix_bundle, conv_slice):
    """Every member and the utterance encoder are in the bundle, the ONNX mixture matches the torch one, and the
    conversational route answers with the mixture's ranking and query terms."""
    import numpy as np

    import retrieval_kd
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.serving.bundle import open_bundle, read_manifest

    mixture, bundle = mix_bundle
    m = read_manifest(bundle)
    mixing = m["mixing"]
    assert [x["dir"] for x in mixing["members"]] == ["query_encoder", "query_encoder_2"]
    assert [x["weight"] for x in mixing["members"]] == [1.0, 0.5] and mixing["utterance"]["weight"] == 0.375
    assert mixing["parity_max_abs_diff"] <= 1e-4 and "utterance_encoder/query_encoder.onnx" in m["files"]
    _, turn = conv_slice
    history = [{"role": h["role"], "text": h["text"]} for h in turn["history"]]
    want = retrieval_kd.load(mixture).encode(history, turn["utterance"])
    s = open_bundle(bundle)
    got, _ = s.encode(history, turn["utterance"])
    single, _ = s.members[0].encode(history, turn["utterance"])
    assert np.max(np.abs(got - want)) <= 1e-4 and not np.allclose(got, single, atol=1e-3)
    assert s.info()["mixing"] == {"weights": [1.0, 0.5], "utterance": 0.375}
    s.close()
    ids = ImpactIndex.load(bundle / "index").search(want, 5)[0]
    with running_server([bundle]) as sp:
        status, body = http_json(sp.url + "/v1/indexes/cast-mix/conversational_search",
                                 {"history": history, "utterance": turn["utterance"], "k": 5})
    assert status == 200, body
    assert [h["id"] for h in body["hits"]] == ids
    top = int(np.argmax(want))
    assert body["query_terms"][0]["weight"] == pytest.approx(float(want[top]), abs=1e-3)


def test_mixture_bundle_with_a_bad_weight_is_refused(mix_bundle, tmp_path):
    from retrieval_kd.errors import BundleError
    from retrieval_kd.serving.bundle import open_bundle

    bad = tmp_path / "bad"
    shutil.copytree(mix_bundle[1], bad)
    path = bad / "manifest.json"
    text = path.read_text().replace('"weight": 0.5', '"weight": -0.5')
    path.write_text(text)
    with pytest.raises(BundleError, match=r"mixing\.members\.1\.weight"):
        open_bundle(bad)


def test_bench_conversational_scores_the_served_bundles(conv_bundle, mix_bundle, conv_slice, tmp_path):
    """`rkd bench conversational`: each bundle's served run is scored per set, with its latency."""
    from retrieval_kd.bench.conversational import run_bench
    from retrieval_kd.data.dataset import Dataset

    ds, turn = conv_slice
    judged = next(d["id"] for d in ds.corpus)
    conv = {"id": "c1", "collection": "cast2021", "turns": [{**turn, "id": "t1"}]}
    Dataset("bench-slice", ds.corpus, {"t1": turn["utterance"]}, {"t1": {judged: 1}}, [conv],
            {"rel_threshold": 1}).save(tmp_path / "ds")
    rows = run_bench([conv_bundle, mix_bundle[1]], str(tmp_path / "ds"), threads=1, out=tmp_path / "out")
    assert [(r["query"], r["set"], r["encoders"]) for r in rows] == [(NAME, "CAsT 2021", 1), ("cast-mix", "CAsT 2021", 3)]
    assert all(r["p95 ms"] >= r["p50 ms"] > 0 and r["turns"] == 1 for r in rows)
    assert (tmp_path / "out" / "table.md").exists()
