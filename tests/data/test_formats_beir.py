"""BEIR folders: corpus, queries judged in the chosen split, qrels; missing pieces and bad rows are named."""
from __future__ import annotations

import pytest
from data_samples import CORPUS, QUERIES

from retrieval_kd.data.formats.beir import read_beir, splits
from retrieval_kd.errors import DataFormatError, DataNotFoundError


@pytest.fixture
def beir_dir(tmp_path, write):
    write("beir/corpus.jsonl", CORPUS)
    write("beir/queries.jsonl", QUERIES)
    write("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td1\t0\n")
    write("beir/qrels/train.tsv", "query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    return tmp_path / "beir"


def test_read_beir_splits(beir_dir):
    assert splits(beir_dir) == ["test", "train"]
    corpus, queries, qrels, meta = read_beir(beir_dir)
    assert [d["id"] for d in corpus] == ["d1", "d2", "d3"]
    assert corpus[0] == {"id": "d1", "contents": "Sorting\nParallel sorting algorithms.", "title": "Sorting"}
    assert queries == {"q1": "parallel sort", "q2": "lisp gc"}  # only those judged in the split
    assert qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}}
    assert meta["split"] == "test" and meta["queries_in_file"] == 3
    _, queries, qrels, _ = read_beir(beir_dir, split="train")
    assert queries == {"q3": "hash tables"} and qrels == {"q3": {"d3": 1}}


def test_unknown_split_lists_the_known_ones(beir_dir):
    with pytest.raises(DataNotFoundError, match="no split 'dev'; known: test, train"):
        read_beir(beir_dir, split="dev")


def test_missing_files(tmp_path, write):
    write("b/queries.jsonl", QUERIES)
    with pytest.raises(DataNotFoundError, match=r"no corpus\.jsonl \(nor corpus\.jsonl\.gz\)"):
        read_beir(tmp_path / "b")
    with pytest.raises(DataNotFoundError, match="not a folder"):
        read_beir(tmp_path / "nowhere")


def test_bad_rows_name_file_and_line(beir_dir, write):
    write("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\n")
    with pytest.raises(DataFormatError, match=r"test\.tsv:3: 2 columns where the first row has 3"):
        read_beir(beir_dir)
    write("beir/corpus.jsonl", CORPUS + '{"_id": "d4", "txt": "typo"}\n')
    with pytest.raises(DataFormatError, match=r"corpus\.jsonl:4: field 'text' record has no 'text'"):
        read_beir(beir_dir)
