"""`rkd data import` end to end (beir, tsv, jsonl, csv, trec, cast, scifact) and `datasets.load(folder | name)`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from data_samples import CORPUS, DOCS, QUERIES, SGML
from typer.testing import CliRunner

from retrieval_kd import datasets
from retrieval_kd.cli import app
from retrieval_kd.data.formats.importer import import_collection
from retrieval_kd.errors import ConfigError, DataFormatError, DataNotFoundError, DataWarning

runner = CliRunner()


def rkd(*args: str):
    res = runner.invoke(app, ["data", "import", *map(str, args)])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res


def test_import_beir_round_trip(tmp_path, write):
    write("beir/corpus.jsonl", CORPUS)
    write("beir/queries.jsonl", QUERIES)
    write("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    res = rkd(tmp_path / "beir", "--format", "beir", "--name", "tiny-beir", "--out", tmp_path / "out")
    assert "docs 3, queries 2" in res.output and "grades {1: 1, 2: 1}" in res.output
    ds = datasets.load(str(tmp_path / "out"))
    assert ds.name == "tiny-beir" and ds.doc_ids == ["d1", "d2", "d3"] and ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert ds.meta["format"] == "beir" and ds.meta["split"] == "test" and ds.meta["grade_counts"] == {"1": 1, "2": 1}


def test_import_tsv_with_fields_and_default_folder(tmp_path, write, monkeypatch):
    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    write("c.tsv", "pid\theadline\tbody\nP1\tSorting\tparallel sorting\nP2\t\tlisp gc\n")
    write("q.tsv", "1\tsorting in parallel\n2\tgarbage collection\n")
    write("r.txt", "1 0 P1 2\n2 0 P2 1\n2 0 P1 0\n")
    rkd(tmp_path / "c.tsv", "--format", "tsv", "--name", "mine", "--queries", tmp_path / "q.tsv",
        "--qrels", tmp_path / "r.txt", "--fields", "id=pid,text=body,title=headline", "--rel-threshold", "1")
    ds = datasets.load("mine")  # by name: the default folder $RKD_CACHE/imported/mine
    assert ds.path == tmp_path / "cache" / "imported" / "mine"
    assert ds.corpus[0] == {"id": "P1", "contents": "Sorting\nparallel sorting", "title": "Sorting"}
    assert ds.queries == {"1": "sorting in parallel", "2": "garbage collection"}
    assert ds.judged_queries() == ds.queries and ds.meta["fields"] == {"id": "pid", "text": "body", "title": "headline"}
    assert datasets.load(str(ds.path)).qrels == ds.qrels
    assert any(r["name"] == "mine" for r in datasets.describe())
    with pytest.raises(ConfigError, match="'cacm' is a registered dataset"):
        rkd(tmp_path / "c.tsv", "--format", "tsv", "--name", "cacm", "--fields", "id=pid,text=body")


def test_import_jsonl_csv_and_trec(tmp_path, write):
    write("c.jsonl", '{"doc_id": "a", "body": "alpha"}\n{"doc_id": "b", "body": "beta"}\n')
    write("q.jsonl", '{"qid": "1", "question": "first letter"}\n')
    write("r.tsv", "1\ta\t1\n")
    ds = import_collection("jsonl", tmp_path / "c.jsonl", "j", tmp_path / "j", queries=tmp_path / "q.jsonl",
                           qrels=tmp_path / "r.tsv", fields={"id": "doc_id", "text": "body"})
    assert ds.queries == {"1": "first letter"} and ds.qrels == {"1": {"a": 1}}
    write("c.csv", 'id,text\na,"alpha, first"\n')
    assert import_collection("csv", tmp_path / "c.csv", "c", tmp_path / "cc").corpus[0]["contents"] == "alpha, first"
    write("ft.sgml", DOCS)
    write("topics.txt", SGML)
    write("qrels.trec", "51 0 FT911-1 1\n52 0 FT911-2 0\n")
    ds = import_collection("trec", tmp_path / "ft.sgml", "ft", tmp_path / "ft", queries=tmp_path / "topics.txt",
                           qrels=tmp_path / "qrels.trec")
    assert ds.queries["51"] == "Airbus Subsidies" and ds.judged_queries() == {"51": "Airbus Subsidies"}


def test_import_checks_name_the_source_files(tmp_path, write):
    write("c.tsv", "d1\tx\nd2\ty\n")
    write("q.tsv", "q1\tfirst\n")
    r = write("r.txt", "q1 0 d1 1\nq1 0 d9 1\n")
    with pytest.raises(DataFormatError, match=rf"{r}: field 'docid' 1 judged documents are not in the corpus: d9"):
        import_collection("tsv", tmp_path / "c.tsv", "x", tmp_path / "x", queries=tmp_path / "q.tsv", qrels=r)
    assert not (tmp_path / "x").exists()
    res = rkd(tmp_path / "c.tsv", "--format", "tsv", "--name", "x", "--out", tmp_path / "x", "--queries",
              tmp_path / "q.tsv", "--qrels", r, "--drop-missing")
    assert f"warning: {r}: field 'docid': dropped 1 judgements: 1 judged documents are not in the corpus: d9" in \
        res.stderr
    assert datasets.load(str(tmp_path / "x")).qrels == {"q1": {"d1": 1}}
    with pytest.raises(DataFormatError, match=r"field 'rel_threshold' no judgement reaches rel_threshold 2"), \
            pytest.warns(DataWarning, match="dropped 1 judgements"):
        import_collection("tsv", tmp_path / "c.tsv", "x", tmp_path / "y", queries=tmp_path / "q.tsv", qrels=r,
                          missing="drop", rel_threshold=2)
    with pytest.raises(ConfigError, match="unknown format 'xml'; known: beir, jsonl"):
        import_collection("xml", tmp_path / "c.tsv", "x", tmp_path / "z")


def test_import_cast_topics(shared_data, tmp_path):
    path = shared_data / "cast" / "ikat2024" / "2024_test_topics.json"
    if not path.exists():
        pytest.skip(f"{path} not in the shared data")
    ds = import_collection("cast", path, "ikat24", tmp_path / "ik")
    assert len(ds.queries) == 218 and ds.corpus == [] and ds.meta["external_corpus"]
    back = datasets.load(str(tmp_path / "ik"))
    assert back.conversations == ds.conversations and back.conversations[0]["collection"] == "ikat24"


def test_import_scifact_zip_worked_example(shared_data, tmp_path):
    zip_path = shared_data / "scifact" / "scifact.zip"
    if not zip_path.exists():
        pytest.skip(f"{zip_path} not in the shared data")
    ds = import_collection("scifact", zip_path, "sf", tmp_path / "sf")
    assert ds.counts() == {"docs": 5183, "queries": 300, "judged_queries": 300, "qrels": 339, "conversations": 0}
    train = import_collection("scifact", zip_path, "sf-train", tmp_path / "sft", split="train")
    assert (len(train.queries), sum(len(v) for v in train.qrels.values())) == (809, 919)
    with pytest.raises(ConfigError, match="SciFact has no split 'dev'; known: test, train"):
        import_collection("scifact", zip_path, "x", tmp_path / "x", split="dev")


def test_load_unknown_name_and_non_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RKD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"unknown dataset 'nope'; known: cacm, .*or give the path of a "
                                                r"dataset folder"):
        datasets.load("nope")
    with pytest.raises(DataNotFoundError, match="not a dataset folder"):
        datasets.load(str(tmp_path))


def test_cli_error_is_one_line(tmp_path, write):
    bad = write("c.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    res = subprocess.run([sys.executable, "-m", "retrieval_kd", "data", "import", str(bad), "--format", "jsonl",
                          "--name", "x", "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RKD_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: {bad}:2: field 'id' document id d1 already used on line 1"
