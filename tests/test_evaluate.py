"""Evaluation: ir-measures figures on a tiny inline run equal hand-computed values; run files; teacher-recall."""
from __future__ import annotations

import math

import pytest

from retrieval_kd.errors import DataFormatError
from retrieval_kd.evaluate import bootstrap_ci, evaluate, read_run, teacher_recall, with_rel, write_run
from retrieval_kd.index.fusion import rrf

QRELS = {"q1": {"d1": 2, "d3": 1, "d9": 0}, "q2": {"d2": 1}, "q3": {"d5": 0}}
RUN = {"q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7, "d4": 0.1}, "q2": {"d1": 0.5, "d7": 0.4}}


def test_measures_equal_hand_computed():
    m = evaluate(RUN, QRELS, ["nDCG@10", "RR@10", "P@2", "R@2", "Success@1"])
    # q1 ranks d3 (grade 1), d2 (unjudged), d1 (grade 2). trec_eval's nDCG uses linear gains:
    # DCG = 1/log2(2) + 2/log2(4); IDCG = 2/log2(2) + 1/log2(3)
    ndcg_q1 = (1 / math.log2(2) + 2 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    # q2 retrieved nothing relevant (0); q3 has no relevant doc and is not counted
    assert m["nDCG@10"] == pytest.approx(ndcg_q1 / 2, abs=1e-9)
    assert m["RR@10"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["P@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["R@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["Success@1"] == pytest.approx(0.5)


def test_relevance_threshold_applies_to_binary_measures():
    m = evaluate(RUN, QRELS, ["RR@10", "R@100"], rel=2)
    # only q1 has a grade >= 2 (d1, at rank 3)
    assert m["RR@10"] == pytest.approx(1 / 3)
    assert m["R@100"] == pytest.approx(1.0)
    assert with_rel("R@100", 2) == "R(rel=2)@100" and with_rel("nDCG@3", 2) == "nDCG@3"


def test_per_query_and_missing_queries_score_zero():
    pq = evaluate({"q1": RUN["q1"]}, QRELS, ["RR@10"], per_query=True)
    assert pq["RR@10"] == {"q1": 1.0, "q2": 0.0}


def test_run_file_round_trip_and_errors(tmp_path):
    path = write_run(RUN, tmp_path / "run.txt", tag="t")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d3", "1", "0.900000", "t"]
    assert read_run(path) == {q: {d: pytest.approx(s) for d, s in docs.items()} for q, docs in RUN.items()}
    bad = tmp_path / "bad.txt"
    bad.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 notanumber t\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:2:.*score"):
        read_run(bad)


def test_teacher_recall_and_rrf():
    teacher = {"q": {f"d{i}": 10 - i for i in range(10)}}
    run = {"q": {"d0": 1.0, "d1": 0.9, "x": 0.8, "d9": 0.7}}
    assert teacher_recall(run, teacher, 10) == pytest.approx(3 / 10)
    assert teacher_recall(run, teacher, 2) == pytest.approx(1.0)
    fused = rrf([{"q": {"a": 2, "b": 1}}, {"q": {"b": 5, "c": 1}}], k=60)
    assert fused["q"]["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert max(fused["q"], key=fused["q"].get) == "b"


def test_bootstrap_interval_contains_mean():
    vals = [0, 1] * 50
    lo, hi = bootstrap_ci(vals)
    assert lo < 0.5 < hi and hi - lo < 0.3


def test_paired_bootstrap_interval_and_counts():
    from retrieval_kd.errors import RKDError
    from retrieval_kd.evaluate import paired_bootstrap

    a = {f"q{i}": 0.5 + 0.1 * (i % 3 == 0) for i in range(60)}
    b = {f"q{i}": 0.5 for i in range(60)}
    r = paired_bootstrap(a, b, n=2000)
    assert r["wins"] == 20 and r["ties"] == 40 and r["losses"] == 0 and r["n"] == 60
    assert abs(r["diff"] - 0.1 / 3) < 1e-9 and 0 < r["lo"] < r["diff"] < r["hi"]
    same = paired_bootstrap(b, b, n=200)
    assert same["lo"] == same["hi"] == 0.0
    with pytest.raises(RKDError, match="one side only"):
        paired_bootstrap(a, {"q0": 1.0})
