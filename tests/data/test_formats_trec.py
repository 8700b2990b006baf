"""TREC topics (XML, SGML, TSV), qrels (TREC and BEIR), run files and SGML documents; malformed -> file:line."""
from __future__ import annotations

import pytest
from data_samples import DOCS, SGML, XML

from retrieval_kd.data.formats.topics import read_topics, sniff
from retrieval_kd.data.formats.trec import read_qrels, read_run, read_trec_docs, write_run
from retrieval_kd.errors import ConfigError, DataFormatError


def test_topic_files(write):
    assert read_topics(write("t.xml", XML)) == {"201": "raspberry pi", "202": "uss carl vinson"}
    with pytest.raises(DataFormatError, match="topic 202 has no <description>"):
        read_topics(write("t1.xml", XML), "desc")
    sgml = write("topics.51-100", SGML)
    assert sniff(sgml) == "sgml"
    assert read_topics(sgml) == {"51": "Airbus Subsidies", "52": "South African Sanctions"}
    assert read_topics(sgml, "desc")["51"] == "Document will discuss government assistance to Airbus."
    assert read_topics(write("t.tsv", "qid\ttext\n1\tfirst topic\n2\tsecond\n")) == {"1": "first topic",
                                                                                    "2": "second"}
    with pytest.raises(ConfigError, match="unknown topic field"):
        read_topics(sgml, "summary")


@pytest.mark.parametrize(("text", "line", "what"), [
    (XML.replace('<topic number="202">', "<topic>"), 7, "topic id '' is empty"),
    (XML.replace("<query>uss carl vinson</query>", ""), 7, "topic 202 has no <query>"),
    (XML.replace("</topics>", ""), 11, "malformed XML"),
    (SGML.replace("<num> Number: 052\n", ""), 11, "topic without <num>"),
    (SGML.replace("052", "051"), 11, "topic 51 appears twice"),
    (SGML.replace("</top>\n\n<top>", ""), 1, "two <num> in one topic"),
    (SGML.replace("</top>\n\n<top>", "\n<top>"), 10, "<top> inside the one opened on line 1"),
    (SGML.replace("<top>\n<num> Number: 052", "<num> Number: 052"), 11, "text outside <top>"),
    (SGML + "<top>\n<num> Number: 53\n", 16, "<top> never closed"),
    (SGML.replace("<desc> Description: sanctions against South Africa.\n", ""), 11, "topic 52 has no <desc>"),
])
def test_malformed_topics_name_file_and_line(write, text, line, what):
    p = write("topics.txt", text)
    field = "desc" if "desc" in what else "title"
    with pytest.raises(DataFormatError, match=what) as e:
        read_topics(p, field)
    assert e.value.path == str(p) and e.value.line == line, str(e.value)


def test_empty_topics_file_is_an_error(write):
    with pytest.raises(DataFormatError, match="no topics"):
        read_topics(write("t.tsv", "\n \n"))
    with pytest.raises(DataFormatError, match=r"t2\.tsv:2: expected '<qid>\\t<text>'"):
        read_topics(write("t2.tsv", "1\tok\n2 no tab\n"))


def test_qrels_trec_and_beir(write):
    assert read_qrels(write("q.txt", "1 0 d1 2\n1 0 d2 0\n2 Q0 d3 1.0\n")) == {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}}
    assert read_qrels(write("test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")) == {
        "q1": {"d1": 1, "d2": 0}}
    assert read_qrels(write("nohead.tsv", "q1\td1\t2\n")) == {"q1": {"d1": 2}}


@pytest.mark.parametrize(("text", "line", "what"), [
    ("1 0 d1 2\n1 0 d2\n", 2, "3 columns where the first row has 4"),
    ("1 0 d1 high\n", 1, "field 'grade' relevance grade 'high' is not a number"),
    ("1 0 d1 0.5\n", 1, "not a whole number"),
    ("1 0 d1 2\n1 0 d1 1\n", 2, "judges document d1 twice, with grades 2 and 1"),
    ("1 d1\n", 1, "got 2"),
])
def test_malformed_qrels(write, text, line, what):
    p = write("qrels.txt", text)
    with pytest.raises(DataFormatError, match=what) as e:
        read_qrels(p)
    assert str(e.value).startswith(f"{p}:{line}:")


def test_empty_qrels_and_run_are_errors(write):
    with pytest.raises(DataFormatError, match="no judgements"):
        read_qrels(write("q.txt", "query-id\tcorpus-id\tscore\n"))
    with pytest.raises(DataFormatError, match="no ranked documents"):
        read_run(write("r.txt", "\n"))


def test_run_round_trip_and_errors(tmp_path, write):
    run = {"q1": {"d1": 0.5, "d2": 0.9}, "q2": {"d3": 1.0}}
    p = write_run(run, tmp_path / "run.txt", tag="t")
    assert p.read_text().splitlines()[0] == "q1 Q0 d2 1 0.900000 t"
    assert read_run(p) == run
    bad = write("bad.run", "q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n")
    with pytest.raises(DataFormatError, match=r"bad\.run:2: field 'docid' document d1 listed twice"):
        read_run(bad)
    with pytest.raises(DataFormatError, match=r"r2\.run:1: field 'rank' rank 'first'"):
        read_run(write("r2.run", "q1 Q0 d1 first 0.5 t\n"))


def test_trec_sgml_documents(write):
    docs = read_trec_docs(write("ft.sgml", DOCS))
    assert docs == [{"id": "FT911-1", "contents": "Markets & money\nShares rose sharply today.",
                     "title": "Markets & money"},
                    {"id": "FT911-2", "contents": "Plain body without a TEXT element."}]


@pytest.mark.parametrize(("text", "line", "what"), [
    (DOCS.replace("<DOCNO>FT911-2</DOCNO>", ""), 8, "exactly one non-empty <DOCNO>"),
    (DOCS.replace("FT911-2", "FT911-1"), 8, "DOCNO FT911-1 already used on line 1"),
    (DOCS.replace("</DOC>\n<DOC>", "</DOC>\nstray\n<DOC>"), 8, "text outside <DOC>"),
    (DOCS + "<DOC>\n", 12, "<DOC> never closed"),
    ("", None, "no <DOC> found"),
])
def test_malformed_trec_documents(write, text, line, what):
    p = write("docs.sgml", text)
    with pytest.raises(DataFormatError, match=what) as e:
        read_trec_docs(p)
    assert e.value.path == str(p) and e.value.line == line
