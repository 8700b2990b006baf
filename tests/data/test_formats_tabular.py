"""JSONL / TSV / CSV corpora and query files through a column mapping; malformed input names file and line."""
from __future__ import annotations

import gzip

import pytest

from retrieval_kd.data.formats.tabular import parse_fields, read_corpus, read_queries
from retrieval_kd.errors import ConfigError, DataFormatError, DataNotFoundError


def test_jsonl_default_columns_and_mapping(write):
    p = write("c.jsonl", '{"_id": "d1", "title": "Sorting", "text": "Parallel  sorting."}\n\n'
                         '{"_id": "d2", "text": "No title here"}\n')
    assert read_corpus(p, "jsonl") == [{"id": "d1", "contents": "Sorting\nParallel sorting.", "title": "Sorting"},
                                       {"id": "d2", "contents": "No title here"}]
    p = write("m.jsonl", '{"doc_id": 7, "body": "x y", "headline": "H", "extra": [1]}\n')
    fields = parse_fields("id=doc_id,text=body,title=headline")
    assert read_corpus(p, "jsonl", fields) == [{"id": "7", "contents": "H\nx y", "title": "H"}]


def test_tsv_with_and_without_header(write):
    p = write("c.tsv", "docid\ttitle\ttext\nd1\tT1\tfirst doc\nd2\t\tsecond doc\n")
    assert [d["contents"] for d in read_corpus(p, "tsv")] == ["T1\nfirst doc", "second doc"]
    p = write("plain.tsv", "d1\tfirst doc\nd2\tsecond doc\n")  # MS MARCO style: id, text, no header
    assert read_corpus(p, "tsv") == [{"id": "d1", "contents": "first doc"}, {"id": "d2", "contents": "second doc"}]
    p = write("three.tsv", "d1\tT\tbody one\n")
    assert read_corpus(p, "tsv", parse_fields("id=1,text=3,title=2")) == [
        {"id": "d1", "contents": "T\nbody one", "title": "T"}]
    with pytest.raises(ConfigError, match="3 columns and no header row"):
        read_corpus(p, "tsv")
    with pytest.raises(ConfigError, match="give a column number"):
        read_corpus(p, "tsv", parse_fields("id=doc,text=body"), header=False)


def test_csv_quoted_multiline_and_gzip(tmp_path, write):
    p = write("c.csv", 'id,title,text\nd1,"A, B","line one\nline two"\nd2,,plain\n')
    assert read_corpus(p, "csv") == [{"id": "d1", "contents": "A, B\nline one line two", "title": "A, B"},
                                     {"id": "d2", "contents": "plain"}]
    gz = tmp_path / "q.tsv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write("qid\ttext\nq1\tparallel sort\n")
    assert read_queries(gz, "tsv") == {"q1": "parallel sort"}


def test_queries_mapping(write):
    p = write("q.jsonl", '{"qid": "q1", "question": "what is x"}\n')
    assert read_queries(p, "jsonl") == {"q1": "what is x"}
    p = write("q.csv", "number,body\n1,first\n")
    assert read_queries(p, "csv", parse_fields("id=number,text=body", ("id", "text"))) == {"1": "first"}
    with pytest.raises(ConfigError, match="'title' is not one of id, text"):
        parse_fields("title=x", ("id", "text"))
    with pytest.raises(ConfigError, match="KEY=COLUMN"):
        parse_fields("id")


@pytest.mark.parametrize(("name", "fmt", "text", "line", "what"), [
    ("bad.jsonl", "jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', 2, "invalid JSON"),
    ("arr.jsonl", "jsonl", '{"_id": "d1", "text": "a"}\n[1, 2]\n', 2, "expected a JSON object"),
    ("nokey.jsonl", "jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "body": "b"}\n', 2, "no 'text'"),
    ("dup.jsonl", "jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', 2, "already used on line 1"),
    ("space.tsv", "tsv", "id\ttext\nd 1\tx\n", 2, "contains whitespace"),
    ("ragged.tsv", "tsv", "d1\tx\nd2\ty\tz\n", 2, "3 columns where the first row has 2"),
    ("ragged.csv", "csv", "id,text\nd1,x\nd2,y,z\n", 3, "3 columns where the first row has 2"),
    ("quote.csv", "csv", 'id,text\nd1,"x"y\n', 2, "malformed CSV"),
    ("latin.tsv", "tsv", "d1\tok\nd2\tcaf\udce9\n", 2, "not UTF-8"),
])
def test_malformed_corpus_names_file_and_line(tmp_path, name, fmt, text, line, what):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(DataFormatError, match=what) as e:
        read_corpus(p, fmt)
    assert (e.value.path, e.value.line) == (str(p), line)
    assert str(e.value).startswith(f"{p}:{line}:")


def test_missing_column_empty_file_and_empty_query(write, tmp_path):
    p = write("c.jsonl", '{"doc": "d1", "text": "a"}\n')
    with pytest.raises(DataFormatError, match=r"c\.jsonl:1: no id column \(tried _id, id"):
        read_corpus(p, "jsonl")
    with pytest.raises(DataFormatError, match=r"c2\.csv:1: field 'docid' no column 'docid'"):
        read_corpus(write("c2.csv", "doc,text\nd1,a\n"), "csv", {"id": "docid"})
    with pytest.raises(DataFormatError, match="no documents"):
        read_corpus(write("empty.jsonl", "\n\n"), "jsonl")
    with pytest.raises(DataFormatError, match="no queries"):
        read_queries(write("empty.tsv", ""), "tsv")
    with pytest.raises(DataFormatError, match=r"q\.tsv:2: field 'text' query q2 has no text"):
        read_queries(write("q.tsv", "q1\tfine\nq2\t \n"), "tsv")
    with pytest.raises(DataNotFoundError, match="file not found"):
        read_corpus(tmp_path / "nowhere.jsonl", "jsonl")
