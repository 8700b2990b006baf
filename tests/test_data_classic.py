"""Classic collections: counts from PROVENANCE, quirk repairs, and malformed input on tiny inline files."""
from __future__ import annotations

import io
import re
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from retrieval_kd.data import classic
from retrieval_kd.errors import DataFormatError, DataNotFoundError

BUILDERS = {"cacm": classic.build_cacm, "med": classic.build_med, "cisi": classic.build_cisi,
            "cranfield": classic.build_cranfield, "cf": classic.build_cf}
_BUILT: dict = {}


def built(name, root):
    if name not in _BUILT:
        _BUILT[name] = BUILDERS[name](root)
    return _BUILT[name]


# docs, queries, qrels lines, queries with a relevant judgement (PROVENANCE.md of each folder)
COUNTS = {
    "cacm": (3204, 64, 796, 52),
    "med": (1033, 30, 696, 30),
    "cranfield": (1400, 225, 1837, 225),
    "cisi": (1460, 112, 3114, 76),
    "cf": (1239, 99, 4820 - 1 - 18, 99),  # see test_cf_query_93_merged_into_92
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts(shared_data, name):
    ds = built(name, shared_data)
    docs, queries, qrels, judged = COUNTS[name]
    c = ds.counts()
    assert (c["docs"], c["queries"], c["qrels"], c["judged_queries"]) == (docs, queries, qrels, judged)
    assert len(set(ds.doc_ids)) == docs
    assert all(d["contents"] for d in ds.corpus) or name == "cranfield"
    assert ds.meta["notes"] and ds.meta["source"] and "rel_threshold" in ds.meta
    judged_docs = {d for v in ds.qrels.values() for d in v}
    assert judged_docs <= set(ds.doc_ids)


def test_cacm_contents_and_ids(shared_data):
    ds = built("cacm", shared_data)
    assert ds.doc_ids[0] == "CACM-0001" and ds.doc_ids[-1] == "CACM-3204"
    doc = {d["id"]: d for d in ds.corpus}["CACM-3000"]
    assert doc["title"] == "Segment Sizes and Lifetimes in Algol 60 Programs"
    assert doc["contents"].startswith(doc["title"] + "\nThe characteristics of the virtual memory requirements")
    assert doc["contents"].endswith("virtual memory systems are presented and discussed.")
    for dropped in ("Batson", "January, 1977", "CA770105", "contour model\n", "4.22 4.34", "3000\t"):
        assert dropped not in doc["contents"]
    # qrels spell ids below 1000 unpadded (CACM-46); they must point at the padded file stems
    raw = (shared_data / "cacm" / "qrels.cacm.txt").read_text()
    assert re.search(r"^(\d+) Q0 CACM-46 1$", raw, re.M)
    qid = re.search(r"^(\d+) Q0 CACM-46 1$", raw, re.M).group(1)
    assert ds.qrels[qid]["CACM-0046"] == 1 and "CACM-46" not in ds.qrels[qid]
    assert ds.queries["1"].startswith("What articles exist which deal with TSS (Time Sharing System)")


def test_med_phrase_removed(shared_data):
    ds = built("med", shared_data)
    assert not any("to be or not to be" in d["contents"] for d in ds.corpus)
    assert "to be or not to be" in (shared_data / "med" / "MED.ALL").read_text()
    first = ds.corpus[0]["contents"]
    assert first.startswith("correlation between maternal and fetal plasma levels of glucose and free fatty acids . "
                            "correlation coefficients have been determined")
    assert ds.qrels["1"]["13"] == 1 and len(ds.qrels["1"]) == 37


def test_cranfield_renumbering_and_grades(shared_data):
    ds = built("cranfield", shared_data)
    assert list(ds.queries) == [str(i) for i in range(1, 226)]
    assert ds.queries["3"].startswith("what problems of heat conduction in composite slabs")  # `.I 004` in cran.qry
    assert ds.meta["query_id_map"]["3"] == "4" and ds.meta["query_id_map"]["225"] == "365"
    codes = Counter(line.split()[2] for line in (shared_data / "cranfield" / "cranqrel").read_text().splitlines())
    grades = Counter(g for v in ds.qrels.values() for g in v.values())
    assert grades == {4: codes["1"], 3: codes["2"], 2: codes["3"], 1: codes["4"], 0: codes["-1"]}
    assert ds.qrels["1"]["184"] == 3 and ds.qrels["1"]["486"] == 0  # codes 2 and -1
    assert ds.rel_threshold == 1
    doc = {d["id"]: d for d in ds.corpus}["1"]
    title = "experimental investigation of the aerodynamics of a wing in a slipstream ."
    assert doc["contents"].startswith(title + "\nan experimental study of a wing")  # title not repeated
    doc240 = {d["id"]: d for d in ds.corpus}["240"]["contents"]
    assert "application to turbulent separations" in doc240 and "dean r. chapman" not in doc240


def test_cisi_unjudged_kept_and_fields(shared_data):
    ds = built("cisi", shared_data)
    unjudged = set(ds.queries) - set(ds.qrels)
    assert len(unjudged) == 36
    doc = ds.corpus[0]
    assert doc["id"] == "1" and doc["title"] == "18 Editions of the Dewey Decimal Classifications"
    assert "Comaromi" not in doc["contents"] and "The present study is a history" in doc["contents"]
    assert ds.queries["58"].startswith("Directions in Library Networking Bibliographic control")
    assert "Avram" not in ds.queries["58"]


def test_cf_query_93_merged_into_92(shared_data):
    ds = built("cf", shared_data)
    raw = (shared_data / "cystic_fibrosis" / "cfquery.xml").read_text()
    assert raw.count("<Item ") == 4820
    assert "93" not in ds.queries and set(ds.queries) == {str(i) for i in range(1, 101)} - {"93"}
    # query 92 declares 108 results; the XML appends query 93's header as an Item and its 18 items
    assert len(ds.qrels["92"]) == 108
    assert ds.qrels["92"]["722"] == 2 + 2 + 2 + 2  # 92's own score "2222", not query 93's "0001"
    assert ds.qrels["1"]["139"] == 1 + 2 + 2 + 2  # score "1222": sum of the four assessors
    assert ds.corpus[0]["id"] == "1" and ds.corpus[0]["title"].startswith("Pseudomonas aeruginosa infection")
    assert sum("\n" not in d["contents"] for d in ds.corpus) == 1239 - 1215  # records without abstract/extract


def test_load_via_registry(shared_data):
    from retrieval_kd import datasets

    ds = datasets.load("cranfield", root=shared_data)
    assert ds.counts() == built("cranfield", shared_data).counts()
    assert ds.qrels == built("cranfield", shared_data).qrels and ds.meta["rel_threshold"] == 1


# ---------------------------------------------------------------- malformed input (tiny inline files)


def test_smart_record_without_I(tmp_path):
    p = tmp_path / "X.ALL"
    p.write_text(".T\nsome title\n.W\ntext\n")
    with pytest.raises(DataFormatError, match=r"X\.ALL:1: .*without \.I") as e:
        classic.read_smart(p)
    assert e.value.line == 1 and e.value.path == str(p)
    p.write_text(".I 1\n.W\nfine\n.I two\n.W\nbad id\n")
    with pytest.raises(DataFormatError, match=r"X\.ALL:4: .*numeric record id") as e:
        classic.read_smart(p)
    p.write_text(".I 1\n.W\na\n.I 1\n.W\nb\n")
    with pytest.raises(DataFormatError, match="duplicate record id 1"):
        classic.read_smart(p)


def test_smart_fields_kept_and_skipped(tmp_path):
    p = tmp_path / "Y.ALL"
    p.write_text(".I 007\n.T\nA title\n.A\nAuthor, X.\n.W\n  the  abstract\n.X\n1 5 1\n.I 8\n.W\nonly text\n")
    docs = classic.smart_docs(p)
    assert docs == [{"id": "7", "contents": "A title\nthe abstract", "title": "A title"},
                    {"id": "8", "contents": "only text"}]


def test_bad_qrels_line(tmp_path):
    d = tmp_path / "cisi"
    d.mkdir()
    (d / "CISI.ALL").write_text(".I 1\n.W\ndoc one\n")
    (d / "CISI.QRY").write_text(".I 1\n.W\nquery one\n")
    (d / "CISI.REL").write_text("1 1 0 0.0\n1 x 0 0.0\n")
    with pytest.raises(DataFormatError, match=r"CISI\.REL:2: .*bad qrels line") as e:
        classic.build_cisi(tmp_path)
    assert e.value.line == 2
    (d / "CISI.REL").write_text("1 2 0 0.0\n")
    with pytest.raises(DataFormatError, match=r"unknown documents \['2'\]"):
        classic.build_cisi(tmp_path)


def _tiny_cacm(root: Path, doc2: str, qrels: str) -> None:
    d = root / "cacm"
    d.mkdir(parents=True)
    docs = {"CACM-0001.html": "<html>\n<pre>\n\n\nA Title\n\nAn abstract\nline two.\n\nCACM June, 1960\n\nDoe, J.\n\n"
                              "CA600601 JB March 1, 1978\n\n1\t5\t1\n</pre>\n</html>\n",
            "CACM-0002.html": doc2}
    with tarfile.open(d / "cacm.tar.gz", "w:gz") as tar:
        for name, text in docs.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (d / "topics.cacm.txt").write_text("<DOC>\n<DOCNO> 1 </DOCNO>\n a query\n</DOC>\n")
    (d / "qrels.cacm.txt").write_text(qrels)


def test_cacm_tiny_and_malformed(tmp_path):
    ok = "<html>\n<pre>\n\n\nOnly Title\n\nCACM JUly, 1968\n\nRoe, R.\n</pre>\n</html>\n"
    _tiny_cacm(tmp_path / "a", ok, "1 Q0 CACM-2 1\n")
    ds = classic.build_cacm(tmp_path / "a")
    assert ds.corpus == [{"id": "CACM-0001", "contents": "A Title\nAn abstract line two.", "title": "A Title"},
                         {"id": "CACM-0002", "contents": "Only Title", "title": "Only Title"}]
    assert ds.qrels == {"1": {"CACM-0002": 1}} and ds.queries == {"1": "a query"}
    _tiny_cacm(tmp_path / "b", ok, "1 Q0 CACM-2 1\n1 Q0 CACM-1\n")
    with pytest.raises(DataFormatError, match=r"qrels\.cacm\.txt:2: .*bad qrels line") as e:
        classic.build_cacm(tmp_path / "b")
    assert e.value.line == 2
    _tiny_cacm(tmp_path / "c", "<html>\n<pre>\nTitle\n\nDoe, J.\n</pre>\n</html>\n", "")
    with pytest.raises(DataFormatError, match=r"cacm\.tar\.gz:CACM-0002\.html: .*date line"):
        classic.build_cacm(tmp_path / "c")


def test_truncated_xml(tmp_path):
    p = tmp_path / "cf74.xml"
    p.write_text('<?xml version="1.0"?>\n<!DOCTYPE FILE SYSTEM\n   "C:\\x\\cfc-2.dtd">\n<FILE>\n<RECORD>\n'
                 "<RECORDNUM>1</RECORDNUM>\n<TITLE>cut he")
    with pytest.raises(DataFormatError, match=r"cf74\.xml:7: malformed XML") as e:
        classic.parse_xml(p)
    assert e.value.line == 7  # line numbers survive the DOCTYPE blanking


def test_cf_bad_score_and_grade_zero(tmp_path):
    d = tmp_path / "cystic_fibrosis"
    (d / "data").mkdir(parents=True)
    (d / "data" / "cf74.xml").write_text("<FILE><RECORD><RECORDNUM>00001 </RECORDNUM><TITLE>T one</TITLE>"
                                         "<EXTRACT>ext</EXTRACT></RECORD><RECORD><RECORDNUM>2</RECORDNUM>"
                                         "<TITLE>T two</TITLE></RECORD></FILE>")
    q = ("<FILEQUERY><QUERY><QueryNumber>00007</QueryNumber><QueryText>q?</QueryText><Results>2</Results>\n"
         '<Records><Item score="0000">1</Item>\n<Item score="0201">2</Item></Records></QUERY></FILEQUERY>')
    (d / "cfquery.xml").write_text(q)
    ds = classic.build_cf(tmp_path)
    assert ds.qrels == {"7": {"1": 0, "2": 3}} and ds.corpus[0]["contents"] == "T one\next"
    (d / "cfquery.xml").write_text(q.replace('"0201"', '"0301"'))
    with pytest.raises(DataFormatError, match=r"cfquery\.xml:3: field 'score'") as e:
        classic.build_cf(tmp_path)
    assert e.value.line == 3


def test_missing_file(tmp_path):
    (tmp_path / "med").mkdir()
    (tmp_path / "med" / "MED.ALL").write_text(".I 1\n.W\nx\n")
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "med" / "medline.query"))):
        classic.build_med(tmp_path)
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "cystic_fibrosis" / "data"))):
        classic.build_cf(tmp_path)
