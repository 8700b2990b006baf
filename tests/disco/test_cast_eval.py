"""Official CAsT conventions on the real qrels files with synthetic runs; the recipe's query texts."""
from __future__ import annotations

import pytest

from retrieval_kd.data.cast import OFFICIAL_REL, read_official_qrels

COLLECTIONS = ("cast2019", "cast2020", "cast2021", "cast2022")


def _ideal(qrels, passage_suffix: str = "") -> dict:
    """Judged documents ranked by grade (best first)."""
    return {q: {d + passage_suffix: 100.0 - 10 * (4 - g) - i * 1e-3 for i, (d, g) in
                enumerate(sorted(docs.items(), key=lambda kv: -kv[1]))} for q, docs in qrels.items()}


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_ideal_run_scores_one_on_judged_turns(shared_data, collection):
    from retrieval_kd.bench.cast import official_evaluate

    qrels = read_official_qrels(shared_data, collection)
    # CAsT 2021 is judged at document level: a passage run ("<doc>-<n>") is folded to its documents
    run = _ideal(qrels, "-3" if collection == "cast2021" else "")
    pq = official_evaluate(run, collection, shared_data, measures=("nDCG@3", "RR"), per_query=True)
    rel = OFFICIAL_REL[collection]
    judged = {q for q, docs in qrels.items() if any(g >= rel for g in docs.values())}
    assert set(pq["nDCG@3"]) == judged  # judged turns only
    assert min(pq["nDCG@3"].values()) == pytest.approx(1.0) and min(pq["RR"].values()) == pytest.approx(1.0)


def test_relevance_threshold_by_year(shared_data):
    from retrieval_kd.bench.cast import official_evaluate

    for collection, qid in (("cast2019", "31_1"), ("cast2020", "81_1")):
        q = read_official_qrels(shared_data, collection)[qid]
        ones = [d for d, g in q.items() if g == 1][:2]
        best = max(q, key=q.get)
        run = {qid: {ones[0]: 3.0, ones[1]: 2.0, best: 1.0}}
        pq = official_evaluate(run, collection, shared_data, measures=("RR", "nDCG@3"), per_query=True)
        # 2019 counts grade 1 as relevant (RR = 1); from 2020 on relevance starts at 2 (RR = 1/3)
        assert pq["RR"][qid] == pytest.approx(1.0 if collection == "cast2019" else 1 / 3)
        assert 0 < pq["nDCG@3"][qid] < 1  # graded gains: grade-1 documents still earn some nDCG


def test_2020_has_turns_judged_without_relevant(shared_data):
    from retrieval_kd.bench.cast import official_evaluate

    qrels = read_official_qrels(shared_data, "cast2020")
    pq = official_evaluate(_ideal(qrels), "cast2020", shared_data, measures=("RR",), per_query=True)
    assert len(qrels) == 208 and len(pq["RR"]) == 199  # 9 turns have no grade >= 2 and are left out


def test_turn_texts(shared_data):
    from retrieval_kd import datasets
    from retrieval_kd.bench.cast import split_queries, turn_texts

    ds = datasets.load("cast-mini")
    assert {k: len(v) for k, v in split_queries(ds).items()} == {"cast2021": 239, "ikat2023": 76}
    hist, stud = turn_texts(ds, "history"), turn_texts(ds, "student")
    assert hist["106_3"].endswith("How deadly is it?") and hist["106_3"].startswith("I just had a breast biopsy")
    assert stud["106_3"].startswith("How deadly is it? [SEP] Even though this condition")
    assert "106_1" in turn_texts(ds, "automatic") and "1-1_1" not in turn_texts(ds, "automatic")


def test_cli_cast_official(shared_data, tmp_path):
    import os
    import subprocess
    import sys

    from retrieval_kd.evaluate import write_run

    write_run(_ideal(read_official_qrels(shared_data, "cast2019")), tmp_path / "run.txt")
    cmd = [sys.executable, "-m", "retrieval_kd", "eval", "cast-official", str(tmp_path / "run.txt")]
    ok = subprocess.run([*cmd, "--collection", "cast2019"], capture_output=True, text=True, timeout=120,
                        env={**os.environ, "RKD_DATA": str(shared_data)})
    assert ok.returncode == 0, ok.stderr
    assert {ln.split()[0]: float(ln.split()[1]) for ln in ok.stdout.splitlines()}["nDCG@3"] == 1.0
    bad = subprocess.run([*cmd, "--collection", "cast2023"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no official qrels for 'cast2023'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_any_collection_name_is_evaluated_and_no_judged_turn_is_an_error():
    from retrieval_kd.bench.cast import score_rows, set_label, split_queries
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.errors import DataFormatError

    turns = [{"id": f"t{i}", "utterance": f"question {i}"} for i in range(3)]
    ds = Dataset(name="mine", corpus=[{"id": "d1", "contents": "x"}, {"id": "d2", "contents": "y"}],
                 queries={t["id"]: t["utterance"] for t in turns}, qrels={"t0": {"d1": 2}, "t1": {"d2": 1}},
                 conversations=[{"id": "c1", "collection": "mytrack-2026", "turns": turns}],
                 meta={"rel_threshold": 2})
    splits = split_queries(ds)
    assert splits == {"mytrack-2026": ["t0"]} and set_label("mytrack-2026") == "mytrack-2026"
    rows = score_rows("raw", {"t0": {"d1": 1.0}}, ds, splits)
    assert rows[0]["set"] == "mytrack-2026" and rows[0]["nDCG@3"] == 1.0  # not an empty table
    ds.qrels = {"t1": {"d2": 1}}
    with pytest.raises(DataFormatError, match="no judged turn at grade >= 2"):
        split_queries(ds)


def test_reference_rows_leave_out_the_untrained_row_of_a_minilm_splade_student():
    """`student_init: minilm-splade` has no checkpoint before training (the trainer builds it from the run's texts):
    the reference rows leave its 'untrained' row out instead of failing on the name."""
    from retrieval_kd.bench.cast import reference_rows, split_queries
    from retrieval_kd.config import load_config
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.index.impact import ImpactIndex
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.teachers.splade import SpladeEncoder

    turns = [{"id": "t0", "utterance": "how do glaciers form", "history": [], "manual": "how do glaciers form"},
             {"id": "t1", "utterance": "and how fast do they move", "history": [
                 {"role": "user", "text": "how do glaciers form"}], "manual": "how fast do glaciers move"}]
    ds = Dataset(name="mine", corpus=[{"id": "d1", "contents": "glaciers form from compacted snow"},
                                      {"id": "d2", "contents": "glaciers move a few metres a day"}],
                 queries={t["id"]: t["utterance"] for t in turns}, qrels={"t0": {"d1": 1}, "t1": {"d2": 1}},
                 conversations=[{"id": "c1", "collection": "mytrack-2026", "turns": turns}], meta={"rel_threshold": 1})
    enc = SpladeEncoder(None, max_length=32)
    index = ImpactIndex.build(enc.encode(ds.doc_texts), ds.doc_ids, enc.vocab)
    cfg = load_config(None, DiscoConfig, ["model.student_init=minilm-splade"])
    names = {r["query"] for r in reference_rows(cfg, ds, split_queries(ds), enc, index, bm25=False)}
    assert "SPLADE: raw utterance" in names and "SPLADE: DiSCo input text, untrained" not in names
    names = {r["query"] for r in reference_rows(load_config(None, DiscoConfig), ds, split_queries(ds), enc, index,
                                                bm25=False)}
    assert "SPLADE: DiSCo input text, untrained" in names
