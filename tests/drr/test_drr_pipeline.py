"""Retrieve + fuse + measure on the real MedicineQA records; the eval recipe and CLI on a small configuration."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retrieval_kd import datasets
from retrieval_kd.cli import app
from retrieval_kd.index.bm25 import BM25Index
from retrieval_kd.methods.drr.pipeline import DRR, BM25Retriever, fuse, hit_at_k, mean, retrieve
from retrieval_kd.methods.drr.rewriters import LastUtterance, WholeDialogue
from retrieval_kd.teachers.queries import dialogue_of, medicineqa_queries


def test_hit_at_k_and_rrf_of_several_queries():
    run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"c": 1.0}}
    qrels = {"q1": {"b": 1, "x": 0}, "q2": {"z": 1}, "q3": {"y": 0}}
    assert hit_at_k(run, qrels, 1) == {"q1": 0.0, "q2": 0.0} and hit_at_k(run, qrels, 2)["q1"] == 1.0
    group = {"a": "aspirin", "b": "aspirin", "c": "x", "z": "x", "x": "?", "y": "?"}
    assert hit_at_k(run, qrels, 1, group=group) == {"q1": 1.0, "q2": 1.0}  # same medicine, other record
    idx = BM25Index.build(["aspirin dose", "metformin dose", "aspirin side effects"], ["d1", "d2", "d3"], "en")
    fused = retrieve({"q": ["aspirin", "side effects"]}, BM25Retriever(idx), k=10)
    assert max(fused["q"], key=fused["q"].get) == "d3"  # found by both queries
    both = fuse([{"q": {"d1": 2.0, "d2": 1.0}}, {"q": {"d2": 5.0}}])
    assert both["q"]["d2"] > both["q"]["d1"]


@pytest.fixture(scope="module")
def mqa(shared_data):
    ds = datasets.load("medicineqa")
    return ds, BM25Retriever(BM25Index.build(ds.doc_texts, ds.doc_ids, "zh-bigram"))


def test_teacher_queries_beat_whole_dialogue_on_the_distractor_variant(mqa):
    ds, bm25 = mqa
    mr = datasets.load("medicineqa-multiround")
    drug = {d["id"]: d["drug"] for d in ds.corpus}
    convs = [c for c in mr.conversations if c["variant"] == "distractor"]
    qrels = {c["id"]: mr.qrels[c["id"]] for c in convs}
    whole = retrieve({c["id"]: WholeDialogue().rewrite(dialogue_of(c)) for c in convs}, bm25, 10)
    teacher = retrieve(medicineqa_queries(type(mr)("x", mr.corpus, qrels=qrels)), bm25, 10)
    hr_whole, hr_teacher = mean(hit_at_k(whole, qrels, 1, drug)), mean(hit_at_k(teacher, qrels, 1, drug))
    assert hr_teacher >= 0.95 and hr_whole <= 0.6, (hr_teacher, hr_whole)


def test_drr_pipeline_object(mqa):
    ds, bm25 = mqa
    pipe = DRR(LastUtterance(), [bm25], k=5)
    queries, hits = pipe.search([{"role": "user", "text": "美多芭的副作用有哪些？"}])
    assert queries == ["美多芭的副作用有哪些？"] and len(hits) == 5
    rec = {d["id"]: d for d in ds.corpus}
    assert rec[hits[0][0]]["drug"] == "美多芭"
    out = pipe.answer([{"role": "user", "text": "美多芭的副作用有哪些？"}], {d["id"]: d["contents"] for d in ds.corpus})
    assert out["answer"] is None and out["hits"] == hits  # reading is off by default


def test_eval_recipe_writes_table_runs_and_config(shared_data, tmp_path):
    from retrieval_kd.bench.medicineqa import EvalConfig, SideConfig, run_eval

    cfg = EvalConfig(en=None, zh=SideConfig(dataset="medicineqa", multiround="medicineqa-multiround",
                                            aside="medicineqa-aside", tokenizer="zh-bigram", dense=False,
                                            more_students={"absent student": str(tmp_path / "none")}),
                     out=str(tmp_path / "eval"))
    rows, table = run_eval(cfg, log=lambda s: None)
    assert len(rows) == 4 * 4  # single-turn, pronoun, distractor, aside × raw, whole dialogue, teacher, linked names
    # (a student folder that does not exist gives no row)
    by = {(r["set"].split(" ", 1)[1], r["rewriter"]): r for r in rows}
    assert by[("single-turn", "teacher queries (gold drug + attribute: upper bound)")]["HR@1"] >= 0.95
    assert by[("multi-round pronoun", "raw question (last turn)")]["HR@1"] < 0.4  # the pronoun hides the medicine
    assert by[("multi-round distractor", "linked names + recency (no model)")]["HR@1"] >= 0.85
    assert by[("aside (recency is not the answer)", "linked names + recency (no model)")]["HR@1"] == 0.0  # recency is wrong
    assert by[("aside (recency is not the answer)", "whole dialogue")]["HR@1"] > 0.3
    assert "| set | rewriter | retriever | HR@1 |" in table and "95% CI" in table
    files = {p.name for p in (tmp_path / "eval").iterdir()}
    assert {"rows.json", "table.md", "run_info.json", "meta.json", "runs", "queries"} <= files
    assert json.loads((tmp_path / "eval" / "run_info.json").read_text())["config"]["zh"]["tokenizer"] == "zh-bigram"


def test_eval_recipe_skips_a_missing_teacher_row_and_refuses_an_empty_table(shared_data, tmp_path):
    from retrieval_kd import datasets
    from retrieval_kd.bench.medicineqa import EvalConfig, SideConfig, run_eval
    from retrieval_kd.errors import ConfigError

    ds = datasets.load("medquad-liveqa")
    bare = type(ds)("liveqa-bare", ds.corpus[:400], dict(list(ds.queries.items())[:10]), {}, [],
                    {k: v for k, v in ds.meta.items() if k != "alt_queries"})
    bare.qrels = {q: r for q, r in ds.qrels.items() if q in bare.queries}
    with pytest.warns(UserWarning, match="judged documents are not in the corpus"):
        bare.save(tmp_path / "bare", missing="drop")
    said: list[str] = []
    cfg = EvalConfig(en=SideConfig(dataset=str(tmp_path / "bare"), dense=False, correct=False),
                     sides=["en"], out=str(tmp_path / "eval"))
    rows, _ = run_eval(cfg, log=said.append)
    assert {r["rewriter"] for r in rows} == {"raw question (last turn)", "whole dialogue"}
    assert any("teacher queries (NLM question summaries)' skipped" in s and "alt_queries.summary" in s for s in said)
    with pytest.raises(ConfigError, match="no side ran"):
        run_eval(EvalConfig(sides=["zh"], zh=None, out=str(tmp_path / "e2")), log=said.append)


def test_cli_rewrite_and_bm25_index(shared_data, tmp_path):
    r = CliRunner().invoke(app, ["rewrite", "last-utterance", "我在吃阿司匹林", "assistant:好的", "它有副作用吗"])
    assert r.exit_code == 0 and r.output.strip() == "它有副作用吗"
    r = CliRunner().invoke(app, ["index", "bm25", "-d", "medicineqa", "-o", str(tmp_path / "bm25"),
                                 "--tokenizer", "zh-bigram"])
    assert r.exit_code == 0, r.output
    assert BM25Index.load(tmp_path / "bm25").meta["dataset"] == "medicineqa"
    r = CliRunner().invoke(app, ["train", "rewriter", "--config", str(tmp_path / "missing.yaml")])
    assert r.exit_code != 0


def test_server_side_pieces_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, retrieval_kd.serving.rewriter, retrieval_kd.index.bm25, retrieval_kd.methods.drr.pipeline; "
            "sys.exit(int('torch' in sys.modules or 'transformers' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
