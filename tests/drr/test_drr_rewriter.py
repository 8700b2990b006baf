"""Students: the tagger learns teacher labels, exports to ONNX with parity; seq2seq from a tiny T5; baselines."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from retrieval_kd.errors import RKDError
from retrieval_kd.methods.drr.rewriters import (
    ExtractiveRewriter,
    LastUtterance,
    Seq2SeqRewriter,
    WholeDialogue,
    load_rewriter,
)

DRUGS = ["aspirin", "metformin", "ibuprofen", "warfarin", "insulin", "lisinopril", "atorvastatin", "omeprazole"]
FILLER = ["please", "tell", "me", "more", "about", "my", "mother", "question", "today", "doctor", "said", "take"]


def toy_examples(n: int, seed: int = 0) -> list[dict]:
    """Dialogues where the teacher searches for the medicine named in the earlier turn plus 'dose'."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        drug = rng.choice(DRUGS)
        pre = " ".join(rng.sample(FILLER, 3))
        out.append({"id": str(i), "queries": [f"{drug} dose"], "dialogue": [
            {"role": "user", "text": f"{pre} I take {drug} now"}, {"role": "assistant", "text": "ok"},
            {"role": "user", "text": f"what {rng.choice(FILLER)} dose is right?"}]})
    return out


@pytest.fixture(scope="module")
def tagger(tiny_bert, tmp_path_factory):
    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.train import train_tagger

    out = tmp_path_factory.mktemp("tagger") / "student"
    cfg = TrainRewriterConfig(teachers=[], out=str(out), base=str(tiny_bert),
                              train={"epochs": 5, "batch_size": 16, "lr": 3e-3, "max_length": 48})
    train_tagger(cfg, toy_examples(160), out, names=DRUGS[:6], log=lambda s: None)  # mentions [MASK]ed, as for zh
    return out


def test_tagger_learns_teacher_terms_and_carries_the_entity(tagger):
    from retrieval_kd.methods.drr.tagging import Corrector

    meta = json.loads((tagger / "meta.json").read_text())
    assert meta["kind"] == "rewriter-tagger" and meta["entity_mask"] and meta["heldout_token_f1"] > 0.8, meta
    rw = ExtractiveRewriter(tagger, corrector=Corrector(names=DRUGS))  # the 'database' knows two more medicines
    test = toy_examples(30, seed=1)
    queries = rw.rewrite_batch([e["dialogue"] for e in test])
    hits = [e["queries"][0].split()[0] in q[0].split() for e, q in zip(test, queries)]
    assert np.mean(hits) >= 0.9, queries  # the medicine from turn 1 is carried into the query, unseen ones too
    assert queries[0][0].startswith(test[0]["dialogue"][-1]["text"])  # appended, not replaced
    rw.keep, rw.carry = "entities", True  # only the carried medicine is appended
    queries = rw.rewrite_batch([e["dialogue"] for e in test])
    drug = [e["queries"][0].split()[0] for e in test]  # written once, weighted `boost` (2): never repeated
    assert np.mean([q[0] == f"{e['dialogue'][-1]['text']} {d}" and dict(q[0].terms).get(d.lower()) == 2.0
                    for e, q, d in zip(test, queries, drug)]) >= 0.9, queries


def test_onnx_export_parity_and_torch_free_runtime(tagger, tmp_path):
    from retrieval_kd.export.rewriter import export_tagger
    from retrieval_kd.methods.drr.tagging import Corrector
    from retrieval_kd.serving.rewriter import OnnxRewriter

    corrector = Corrector({"aspirin": 5, "ibuprofen": 3}, DRUGS, {"dose": "dosage"})
    info = export_tagger(tagger, tmp_path / "onnx", corrector=corrector)
    assert info["parity_max_abs_diff"] < 1e-4 and (tmp_path / "onnx" / "tokenizer.json").exists()
    onnx_rw, torch_rw = OnnxRewriter(tmp_path / "onnx"), ExtractiveRewriter(tagger, corrector=corrector)
    dialogues = [e["dialogue"] for e in toy_examples(8, seed=2)]
    for (_, _, a, ea), (_, _, b, eb) in zip(onnx_rw.tag(dialogues), torch_rw.tag(dialogues)):
        assert np.abs(a - b).max() < 1e-4 and ea == eb and ea  # same probabilities, same masked mentions
    assert onnx_rw.corrector.correct("ibuprofin") == "ibuprofen"
    queries = onnx_rw.rewrite_batch(dialogues)
    assert queries == torch_rw.rewrite_batch(dialogues) and all("dosage" in q[0] for q in queries)


def test_seq2seq_student_from_a_tiny_t5(tmp_path):
    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.train import init_tiny_seq2seq, train_seq2seq

    base = init_tiny_seq2seq(tmp_path / "t5", extra_tokens=["氯", "吡"])
    assert json.loads((base / "config.json").read_text())["d_model"] == 64
    cfg = TrainRewriterConfig(student="seq2seq", teachers=[], out=str(tmp_path / "s2s"),
                              train={"epochs": 1, "batch_size": 8, "lr": 3e-4, "max_length": 256})
    out = train_seq2seq(cfg, toy_examples(16), base, tmp_path / "s2s", log=lambda s: None)
    rw = load_rewriter(out)
    assert isinstance(rw, Seq2SeqRewriter)
    qs = rw.rewrite(toy_examples(1, seed=3)[0]["dialogue"])
    assert qs and all(isinstance(q, str) and q for q in qs)


def test_baselines_and_loader(tmp_path):
    d = [{"role": "user", "text": "I take aspirin"}, {"role": "assistant", "text": "ok"},
         {"role": "user", "text": "side effects?"}]
    assert LastUtterance().rewrite(d) == ["side effects?"]
    assert WholeDialogue().rewrite(d) == ["I take aspirin ok side effects?"]
    assert isinstance(load_rewriter("last-utterance"), LastUtterance)
    with pytest.raises(RKDError, match="not a rewriter"):
        load_rewriter(tmp_path)


def test_rewrite_route_returns_text_and_weighted_terms(tagger, tmp_path):
    """/v1/rewrite: the old `rewrite` string plus `text` (no word repeated) and `terms` [{term, weight}]."""
    from fastapi.testclient import TestClient

    from retrieval_kd.export.medical import build_medical_bundle
    from retrieval_kd.methods.drr.query import appended_words_repeat
    from server.app import create_app
    from server.settings import ServerSettings

    pytest.importorskip("retrieval_kd.datasets").load("medicineqa")  # the bundle's database (skips without data)
    build_medical_bundle(tagger, tmp_path / "med", name="med", dataset="medicineqa", tokenizer="zh-bigram",
                         with_metrics=False)
    dialogue = toy_examples(1, seed=4)[0]["dialogue"]
    with TestClient(create_app([tmp_path / "med"], ServerSettings())) as c:
        body = c.post("/v1/rewrite", json={"dialogue": dialogue}).json()
    question = dialogue[-1]["text"]
    assert body["rewrite"] == body["text"] and body["text"].startswith(question), body
    assert appended_words_repeat(body["text"], question) == []
    weights = {t["term"]: t["weight"] for t in body["terms"]}
    assert all(weights[w.lower()] >= 1 for w in question.replace("?", " ").split()), body
    assert any(w > 1 for w in weights.values()), body  # the kept terms weigh more than the question's words


def test_seq2seq_warm_started_encoder_decoder_copies_from_the_dialogue(tiny_bert, tmp_path):
    """MiniLM→MiniLM (here the tiny BERT): pretrained encoder and decoder, new cross-attention; copy decoding writes
    only the dialogue's tokens, appended to the question as weighted terms."""
    from transformers import AutoTokenizer

    from retrieval_kd.methods.drr.config import TrainRewriterConfig
    from retrieval_kd.methods.drr.query import WeightedQuery, appended_words_repeat
    from retrieval_kd.methods.drr.train import init_bert2bert, train_seq2seq

    base = init_bert2bert(tmp_path / "b2b", encoder=tiny_bert)
    cfg = TrainRewriterConfig(student="seq2seq", teachers=[], out=str(tmp_path / "s2s"), boost=2,
                              train={"epochs": 3, "batch_size": 8, "lr": 1e-3, "max_length": 64})
    out = train_seq2seq(cfg, toy_examples(32), base, tmp_path / "s2s", log=lambda s: None)
    rw = load_rewriter(out)
    assert isinstance(rw, Seq2SeqRewriter) and rw.copy_only and rw.boost == 2.0
    tok = AutoTokenizer.from_pretrained(out)
    for e in toy_examples(4, seed=5):
        (terms,), (q,) = rw.generate([e["dialogue"]]), rw.rewrite(e["dialogue"])
        allowed = {t for turn in e["dialogue"] for t in tok.tokenize(turn["text"])} | {";"}
        assert all(set(tok.tokenize(t)) <= allowed for t in terms), (terms, e["dialogue"])
        question = e["dialogue"][-1]["text"]
        assert isinstance(q, WeightedQuery) and q.startswith(question) and appended_words_repeat(q, question) == []
