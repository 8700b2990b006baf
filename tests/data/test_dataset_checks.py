"""No silent failure on save/load: judged ids must exist, some grade must reach rel_threshold, plain permissions."""
from __future__ import annotations

import json
import os
import stat

import pytest

from retrieval_kd.data.dataset import Dataset
from retrieval_kd.errors import DataFormatError, DataWarning


def ds(**kw) -> Dataset:
    base = {"name": "t", "corpus": [{"id": f"d{i}", "contents": f"doc {i}"} for i in range(3)],
            "queries": {"q1": "one", "q2": "two"}, "qrels": {"q1": {"d0": 1}, "q2": {"d1": 2}}}
    return Dataset(**{**base, **kw})


def test_missing_documents_error_names_field_ids_and_count(tmp_path):
    qrels = {"q1": {"d0": 1, **{f"x{i}": 1 for i in range(7)}}}
    with pytest.raises(DataFormatError) as e:
        ds(qrels=qrels).save(tmp_path / "a")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'a' / 'qrels.txt'}: field 'docid' 7 judged documents are not in the corpus")
    assert "x0, x1, x2, x3, x4 (+2 more)" in msg and "missing='drop'" in msg
    assert not (tmp_path / "a").exists()


def test_missing_documents_dropped_with_a_warning(tmp_path):
    d = ds(qrels={"q1": {"d0": 1, "gone": 1}, "q2": {"gone2": 1}})
    with pytest.warns(DataWarning, match=r"field 'docid': dropped 2 judgements: 2 judged documents .*gone, gone2"):
        d.save(tmp_path / "a", missing="drop")
    back = Dataset.load(tmp_path / "a")
    assert back.qrels == {"q1": {"d0": 1}}
    assert back.meta["dropped_judgements"] == {"docid": {"judgements": 2, "ids": 2}}


def test_judged_query_without_text(tmp_path):
    with pytest.raises(DataFormatError, match="field 'qid' 1 judged queries have no query text: q9"):
        ds(qrels={"q1": {"d0": 1}, "q9": {"d1": 1}}).save(tmp_path / "a")


def test_load_checks_too(tmp_path):
    out = ds().save(tmp_path / "a")
    (out / "qrels.txt").write_text("q1 0 d0 1\nq1 0 nowhere 1\n")
    with pytest.raises(DataFormatError, match=r"qrels\.txt: field 'docid' 1 judged documents .*: nowhere"):
        Dataset.load(out)


def test_threshold_no_grade_reaches_it(tmp_path):
    with pytest.raises(DataFormatError, match=r"field 'rel_threshold' no judgement reaches rel_threshold 3 "
                                              r"\(grades \{1: 1, 2: 1\}\)"):
        ds(meta={"rel_threshold": 3}).save(tmp_path / "a")
    out = ds(meta={"rel_threshold": 2}).save(tmp_path / "b")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["grade_counts"] == {"1": 1, "2": 1}
    assert Dataset(name="no-qrels", corpus=[], meta={"rel_threshold": 5}).save(tmp_path / "c").is_dir()


def test_external_corpus_skips_the_document_check(tmp_path):
    d = Dataset("topics", [], {"q1": "x"}, {"q1": {"MARCO_1": 2}}, meta={"external_corpus": "MS MARCO"})
    assert Dataset.load(d.save(tmp_path / "t")).qrels == {"q1": {"MARCO_1": 2}}


def test_whitespace_ids(tmp_path):
    with pytest.raises(DataFormatError, match="field 'docid' document id 'd 1'"):
        ds(corpus=[{"id": "d 1", "contents": "x"}], qrels={"q1": {"d 1": 1}}).save(tmp_path / "a")


def test_saved_folder_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = ds().save(tmp_path / "perm")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == dict.fromkeys(["corpus.jsonl", "queries.tsv", "qrels.txt", "meta.json"], 0o644)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_cast_mini_meta_tells_its_grades(shared_data):
    from retrieval_kd import datasets

    mini = datasets.load("cast-mini")
    assert mini.rel_threshold == 1 and mini.meta["grade_counts"] == {"1": 440}
    assert "not TREC assessments" in mini.meta["grades"]["1"]
