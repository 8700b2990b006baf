"""Distill-Retrieve-Read serving: a "medical" bundle over the real MedicineQA records, served by a real uvicorn."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval_kd.serving.process import REPO, http_json, running_server

NAME = "medicineqa-drr"


@pytest.fixture(scope="module")
def mqa(shared_data):
    """The 318 MedicineQA evidence records and the derived multi-round dialogues (zh)."""
    from retrieval_kd import datasets

    return datasets.load("medicineqa"), datasets.load("medicineqa-multiround")


def _split(mr):
    """Pronoun dialogues of the first 60 base questions train; distractor dialogues of the other ~30 test."""
    from retrieval_kd.teachers.queries import dialogue_of, medicineqa_queries

    teacher = medicineqa_queries(mr)
    bases = sorted({c["base_id"] for c in mr.conversations})
    train_bases = set(bases[:60])
    train = [{"id": c["id"], "dialogue": dialogue_of(c), "queries": teacher[c["id"]]} for c in mr.conversations
             if c["base_id"] in train_bases and c["variant"] == "pronoun" and teacher.get(c["id"])]
    test = [dialogue_of(c) for c in mr.conversations if c["base_id"] not in train_bases and c["variant"] == "distractor"]
    return train, test


@pytest.fixture(scope="module")
def tagger(mqa, tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT (tests/conftest.py) trained briefly by `train_tagger`."""
    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.train import train_tagger

    base = tiny_bert
    ds, mr = mqa
    train, _ = _split(mr)
    names = sorted({d["drug"] for d in ds.corpus})
    out = tmp_path_factory.mktemp("tagger") / "student"
    cfg = TrainRewriterConfig(teachers=[], out=str(out), base=str(base),
                              train={"epochs": 2, "batch_size": 16, "lr": 3e-3, "max_length": 64})
    return train_tagger(cfg, train, out, names=names, log=lambda s: None)


@pytest.fixture(scope="module")
def med_bundle(tagger, mqa, tmp_path_factory) -> Path:
    from retrieval_kd.export.medical import build_medical_bundle

    dst = tmp_path_factory.mktemp("med-bundles") / NAME
    build_medical_bundle(tagger, dst, name=NAME, dataset="medicineqa", tokenizer="zh-bigram")
    return dst


@pytest.fixture(scope="module")
def in_process(tagger, mqa):
    """The in-process pipeline: the torch tagger + a fresh BM25 index of the records, fused as `rkd eval` does."""
    from retrieval_kd.index.bm25 import BM25Index
    from retrieval_kd.methods.drr.pipeline import DRR, BM25Retriever
    from retrieval_kd.methods.drr.rewriters import ExtractiveRewriter
    from retrieval_kd.methods.drr.tagging import Corrector

    ds = mqa[0]
    rw = ExtractiveRewriter(tagger, corrector=Corrector.for_medicines(ds.corpus))
    return DRR(rw, [BM25Retriever(BM25Index.build(ds.doc_texts, ds.doc_ids, "zh-bigram"))], k=1000,
               fusion="rrf-max")


def test_manifest_lists_and_verifies_every_file(med_bundle, mqa, tmp_path):
    from retrieval_kd.errors import BundleError
    from retrieval_kd.serving.bundle import open_bundle, read_manifest
    from retrieval_kd.serving.medical import MedicalSearcher

    m = read_manifest(med_bundle)
    assert m["kind"] == "medical" and m["name"] == NAME
    assert set(MedicalSearcher.required_files) <= set(m["files"]) and "rewriter/corrector.json" in m["files"]
    assert m["rewriter"]["parity_max_abs_diff"] <= 1e-4 and m["rewriter"]["entity_mask"]
    assert m["docstore"]["count"] == len(mqa[0].corpus) == m["retrieval"]["documents"]
    assert m["retrieval"]["tokenizer"] == "zh-bigram" and 0 < m["metrics"]["nDCG@10"] <= 1
    s = open_bundle(med_bundle)
    assert s.kind == "medical" and s.capabilities == {"search", "rewrite", "distill_search"}
    assert s.index.docids == mqa[0].doc_ids
    s.close()
    bad = tmp_path / "bad"
    shutil.copytree(med_bundle, bad)
    p = bad / "rewriter" / "rewriter.onnx"
    data = p.read_bytes()
    p.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one byte changed
    with pytest.raises(BundleError, match="rewriter.onnx"):
        open_bundle(bad)


def test_served_over_http_matches_in_process_pipeline(med_bundle, mqa, in_process):
    ds = mqa[0]
    dialogues = _split(mqa[1])[1][:3]
    assert len(dialogues) == 3 and all(len(d) >= 3 for d in dialogues)  # history names a second medicine
    drug = {d["id"]: d["drug"] for d in ds.corpus}
    url = f"/v1/indexes/{NAME}"
    with running_server([med_bundle]) as sp:
        for dialogue in dialogues:
            queries, hits = in_process.search(dialogue, 1000)
            status, body = http_json(sp.url + "/v1/rewrite", {"dialogue": dialogue})
            assert status == 200, body
            assert body["index"] == NAME and body["rewrite"] == "\n".join(queries)
            assert body["rewrite"].startswith(dialogue[-1]["text"])  # 'append' mode: question + kept terms
            status, body = http_json(sp.url + url + "/distill_search", {"dialogue": dialogue, "k": 5,
                                                                        "with_text": True})
            assert status == 200, body
            ids, scores = [h["id"] for h in body["hits"]], [h["score"] for h in body["hits"]]
            assert len(ids) == 5 and scores == sorted(scores, reverse=True) and scores[-1] > 0
            assert ids == [d for d, _ in hits[:5]] and body["rewrite"] == "\n".join(queries)
            assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
            assert body["hits"][0]["metadata"]["drug"] == drug[ids[0]] and body["hits"][0]["text"]
        question = dialogues[0][-1]["text"]
        status, body = http_json(sp.url + url + "/search", {"query": question, "k": 5})
        assert status == 200 and [h["id"] for h in body["hits"]] == [
            d for d, _ in in_process.retrievers[0].index.search(question, 5)]
        assert http_json(sp.url + url + "/distill_search", {"dialogue": [], "k": 5})[0] == 422
        assert http_json(sp.url + "/v1/rewrite", {"dialogue": []})[0] == 422
        status, body = http_json(sp.url + url + "/conversational_search",
                                 {"history": [], "utterance": question, "k": 5})
        assert status == 409 and "sparse-conversational" in str(body)
        maps = Path(f"/proc/{sp.proc.pid}/maps")
        if maps.exists():  # the uvicorn process itself: no libtorch mapped
            assert "libtorch" not in maps.read_text()


def test_server_never_imports_torch(med_bundle, mqa):
    """Loading the bundle, rewriting and distill-searching leave torch and transformers unloaded."""
    dialogue = _split(mqa[1])[1][0]
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from server.app import create_app\n"
        f"c = TestClient(create_app([{str(med_bundle)!r}]))\n"
        f"r = c.post('/v1/indexes/{NAME}/distill_search', json={{'dialogue': {dialogue!r}, 'k': 3}})\n"
        "assert r.status_code == 200 and len(r.json()['hits']) == 3, r.text\n"
        f"r = c.post('/v1/rewrite', json={{'dialogue': {dialogue!r}}})\n"
        "assert r.status_code == 200 and r.json()['rewrite'], r.text\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_builds_a_bundle_from_an_exported_rewriter(med_bundle, tmp_path):
    from typer.testing import CliRunner

    from retrieval_kd.cli import app
    from retrieval_kd.serving.bundle import open_bundle, read_manifest

    dst = tmp_path / "again"
    r = CliRunner().invoke(app, ["export", "medical-bundle", str(med_bundle / "rewriter"), str(dst), "-d", "medicineqa",
                                 "--name", "again", "--tokenizer", "zh-bigram"])
    assert r.exit_code == 0, r.output
    a, b = read_manifest(med_bundle), read_manifest(dst)
    assert b["name"] == "again" and a["files"]["rewriter/rewriter.onnx"] == b["files"]["rewriter/rewriter.onnx"]
    assert a["metrics"]["nDCG@10"] == b["metrics"]["nDCG@10"]  # same rewriter + same BM25 -> same measurement
    dialogue = [{"role": "user", "text": "我在吃吡喹酮片。"}, {"role": "user", "text": "它有什么副作用？"}]
    s1, s2 = open_bundle(med_bundle), open_bundle(dst)
    assert s1.distill_search(dialogue, 5).ids == s2.distill_search(dialogue, 5).ids
    s1.close()
    s2.close()
    r = CliRunner().invoke(app, ["export", "medical-bundle", str(tmp_path), str(tmp_path / "x"), "-d", "medicineqa"])
    assert r.exit_code != 0 and not (tmp_path / "x").exists()
