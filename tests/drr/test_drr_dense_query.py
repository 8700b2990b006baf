"""The dense query student: what it reads, that training moves gold answers up, its folder, its eval wiring."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from retrieval_kd.errors import ConfigError
from retrieval_kd.methods.drr.config import TrainRewriterConfig
from retrieval_kd.methods.drr.query import WeightedQuery, query_text, weighted_query

TOPICS = ["aspirin", "insulin", "warfarin", "ibuprofen", "metformin", "lisinopril", "omeprazole", "sertraline"]
ASPECTS = ["dose", "side effects", "interactions"]


def toy_dataset():
    """24 answers (topic × aspect), 24 questions that name the topic only through the teacher query."""
    docs = {f"D{t}{a}": f"{TOPICS[t]} {ASPECTS[a]}: what patients should know about the {ASPECTS[a]} of "
            f"{TOPICS[t]}." for t in range(len(TOPICS)) for a in range(len(ASPECTS))}
    convs, queries, qrels = [], {}, {}
    for t in range(len(TOPICS)):
        for a in range(len(ASPECTS)):
            q = f"Q{t}{a}"
            queries[q] = f"my doctor gave me a new pill, question about {ASPECTS[a]} number {t}"
            convs.append({"id": q, "turns": [{"id": "1", "role": "user", "utterance": queries[q],
                                               "teacher_queries": [TOPICS[t]]}]})
            qrels[q] = {f"D{t}{a}": 1}
    return SimpleNamespace(name="toy-dense-query", corpus=[{"id": d, "text": x} for d, x in docs.items()],
                           doc_ids=list(docs), doc_texts=list(docs.values()), queries=queries, qrels=qrels,
                           conversations=convs, rel_threshold=1, meta={})


def test_query_text_prefixes_kept_terms_only():
    q = weighted_query("is it safe with alcohol", ["metformin"])
    assert query_text(q) == f"metformin . {q}" and query_text(q, prefix=False) == str(q)
    assert query_text("plain question") == "plain question"
    assert query_text(WeightedQuery("no kept terms", [("no", 1.0)])) == "no kept terms"


def test_training_ranks_gold_answers_higher_and_saves_a_loadable_folder(tiny_bert, tmp_path, monkeypatch):
    import torch

    from retrieval_kd import datasets
    from retrieval_kd.methods.drr.dense_query import load_dense_query, training_pairs
    from retrieval_kd.methods.drr.recipes import train_rewriter
    from retrieval_kd.teachers.dense import DenseEncoder

    ds = toy_dataset()
    monkeypatch.setattr(datasets, "load", lambda name: ds)
    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    cfg = TrainRewriterConfig(student="dense-query", base=str(tiny_bert), teachers=[{"dataset": ds.name}],
                              train={"epochs": 30, "batch_size": 8, "lr": 3e-3, "max_length": 64},
                              out=str(tmp_path / "qs"))
    _, pairs = training_pairs(cfg, log=lambda s: None)
    assert pairs[0][0].startswith("aspirin . my doctor") and len(pairs) == 24  # the teacher query as kept terms

    def mean_gold_rank(enc):
        texts = [t for t, _ in pairs]
        scores = enc.encode(texts) @ docs.T
        return float(np.mean([(s > s[gold[0]]).sum() for s, (_, gold) in zip(scores, pairs)]))

    base = DenseEncoder(tiny_bert, max_length=64)
    docs = base.encode(ds.doc_texts)
    before = mean_gold_rank(base)
    torch.manual_seed(0)
    out = train_rewriter(cfg, log=lambda s: None)
    enc, meta = load_dense_query(out)
    import retrieval_kd

    assert retrieval_kd.load(out).meta["kind"] == "drr-dense-query"  # opened by the kind its meta.json names
    assert meta["prefix"] is True and meta["train_examples"] == 24 and meta["steps"] == 90
    after = mean_gold_rank(enc)
    assert after < before / 3, (before, after)  # the query side learnt which answer each question wants
    np.testing.assert_allclose(DenseEncoder(tiny_bert, max_length=64).encode(ds.doc_texts), docs, atol=1e-6)
    assert not list(tmp_path.glob("qs.tmp*"))  # written to a temporary folder, then renamed
    from retrieval_kd.bench.medicineqa import SideConfig, _retrievers

    with pytest.raises(ConfigError, match="was trained over .*document vectors, the index uses"):
        _retrievers(ds, SideConfig(dataset=ds.name, dense_query=str(out)), log=lambda s: None)  # MiniLM's index


def test_config_errors(tiny_bert, tmp_path, monkeypatch):
    from retrieval_kd import datasets
    from retrieval_kd.bench.medicineqa import SideConfig, _retrievers
    from retrieval_kd.methods.drr.dense_query import training_pairs

    ds = toy_dataset()
    monkeypatch.setattr(datasets, "load", lambda name: ds)
    two = TrainRewriterConfig(student="dense-query", teachers=[{"dataset": "a"}, {"dataset": "b"}],
                              out=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="takes one source"):
        training_pairs(two, log=lambda s: None)
    ds.qrels = {q: {} for q in ds.qrels}
    with pytest.raises(ConfigError, match="need at least 10 dialogues with gold documents, got 0"):
        training_pairs(TrainRewriterConfig(student="dense-query", teachers=[{"dataset": "a"}], out=str(tmp_path)),
                       log=lambda s: None)
    with pytest.raises(ConfigError, match="dense_query needs dense: true"):
        _retrievers(ds, SideConfig(dataset="x", dense=False, dense_query=str(tmp_path / "qs")), log=lambda s: None)


def test_prefix_retriever_reads_kept_terms_first():
    from retrieval_kd.methods.drr.pipeline import DenseRetriever

    seen = []

    class Rec:
        def encode(self, texts):
            seen.extend(texts)
            return np.ones((len(texts), 2), dtype=np.float32)

    q = weighted_query("can I take it with food", ["omeprazole"])
    DenseRetriever(Rec(), None, prefix=True).vectors([q, "raw"])
    DenseRetriever(Rec(), None).vectors([q])
    assert seen == [f"omeprazole . {q}", "raw", str(q)]


def test_eval_rows_pair_the_query_student_with_the_base_encoder(tmp_path, monkeypatch):
    """Train a (one-epoch) dense query student over MiniLM on a toy folder dataset, then `rkd eval medicineqa`'s
    recipe: the query-student retrievers appear, their rows carry the second paired column, the table shows it."""
    from retrieval_kd.bench.medicineqa import QS_DENSE, VS_BASE, EvalConfig, SideConfig, run_eval
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.drr.recipes import train_rewriter

    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    toy = toy_dataset()
    folder = Dataset("toy-dense-query", [{"id": d, "contents": x} for d, x in zip(toy.doc_ids, toy.doc_texts)],
                     toy.queries, toy.qrels, toy.conversations, {"rel_threshold": 1}).save(tmp_path / "toy")
    cfg = TrainRewriterConfig(student="dense-query", teachers=[{"dataset": str(folder)}],
                              train={"epochs": 1, "batch_size": 8, "max_length": 64}, out=str(tmp_path / "qs"))
    out = train_rewriter(cfg, log=lambda s: None)
    ev = EvalConfig(en=SideConfig(dataset=str(folder), dense=True, dense_query=str(out), correct=False, focus=False,
                                  with_raw=False), sides=["en"], out=str(tmp_path / "eval"))
    rows, table = run_eval(ev, log=lambda s: None)
    by = {(r["rewriter"], r["retriever"]): r for r in rows}
    raw = "raw question (last turn)"
    assert {(raw, QS_DENSE), (raw, "hybrid (query student)"), (raw, "dense"), (raw, "hybrid")} <= set(by)
    assert VS_BASE in by[(raw, QS_DENSE)] and VS_BASE not in by[(raw, "dense")]
    assert VS_BASE in table.splitlines()[0]
