"""medquad-liveqa: MedQuAD XML answers + judged CSV answers vs the LiveQA-Med 2017 test questions."""
from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict

import pytest

from retrieval_kd.data import medquad
from retrieval_kd.errors import DataFormatError, DataNotFoundError

_BUILT: dict = {}


@pytest.fixture(scope="module")
def ds(shared_data):
    if "ds" not in _BUILT:  # the whole tree: 11,274 XML files, about 3 s here
        _BUILT["ds"] = medquad.build_medquad_liveqa(shared_data)
    return _BUILT["ds"]


@pytest.fixture(scope="module")
def raw_judged(shared_data):
    """Qrels lines and CSV rows read straight from the zip, independently of the reader."""
    with zipfile.ZipFile(shared_data / "medquad" / medquad.QRELS_ZIP) as z:
        qname = [n for n in z.namelist() if n.endswith("Judged-Answers.txt") and "MACOSX" not in n][0]
        cname = [n for n in z.namelist() if n.endswith(".csv") and "MACOSX" not in n][0]
        lines = [line.split() for line in z.read(qname).decode().splitlines() if line.strip()]
        rows = list(csv.reader(io.StringIO(z.read(cname).decode(), newline="")))[1:]
    return lines, rows


def test_counts(ds, raw_judged):
    lines, rows = raw_judged
    assert len(lines) == 2479 and len(rows) == 2479
    pairs = {(q, a) for q, _, a in lines}
    c = ds.counts()
    assert c["queries"] == 104 and list(ds.queries) == [f"TQ{i}" for i in range(1, 105)]
    assert c["qrels"] == len(pairs) and len(ds.qrels) == 103 and "TQ83" not in ds.qrels
    assert c["judged_queries"] == 78 == ds.meta["questions_with_relevant_answer"]  # the issue says 78
    assert ds.rel_threshold == 2
    assert len(set(ds.doc_ids)) == len(ds.doc_ids)
    # 16,407 answered pairs in <Document> files (PROVENANCE) + 16 in 4 NINDS files of a lower-case schema
    csv_only = {r[0] for r in rows} - {d["id"] for d in ds.corpus[:16423]}
    assert len(csv_only) == 1535 and c["docs"] == 16423 + 1535
    assert {a for _, _, a in lines} <= set(ds.doc_ids)


def test_grades_shifted_and_max_kept(ds, raw_judged):
    lines, _ = raw_judged
    best = defaultdict(int)
    for q, g, a in lines:
        best[(f"TQ{q}", a)] = max(best[(f"TQ{q}", a)], int(g[0]) - 1)
    assert {(q, a): g for q, docs in ds.qrels.items() for a, g in docs.items()} == dict(best)
    assert ds.qrels["TQ6"]["ADAM_0002332_Sec2.txt"] == 3  # judged 1-Incorrect and 4-Excellent
    assert ds.qrels["TQ1"]["ADAM_0002818_Sec2.txt"] == 2  # judged 2-Related and 3-Incomplete
    assert set(g for v in ds.qrels.values() for g in v.values()) == {0, 1, 2, 3}


def test_answer_ids_and_contents(ds, shared_data):
    docs = {d["id"]: d for d in ds.corpus}
    ghr = docs["GHR_0000804_Sec2.txt"]  # judged, from the XML
    pairs = medquad.read_medquad_xml(shared_data / "medquad" / "3_GHR_QA" / "0000804.xml", "GHR")
    assert ghr == pairs[1] and ghr["contents"].startswith(ghr["title"] + "\n")
    adam = docs["ADAM_0003147_Sec1.txt"]  # only in the CSV (ADAM answers were removed from the XML)
    assert adam["contents"].startswith("What is (are) Polycystic ovary syndrome ?")
    assert "Polycystic ovary syndrome is a condition" in adam["contents"] and "URL" not in adam["contents"]
    # files that repeat their parent's Document id keep distinct ids (file stem)
    assert docs["CancerGov_0000013_2_1_Sec1.txt"]["contents"] != docs["CancerGov_0000013_2_Sec1.txt"]["contents"]
    assert "NINDS_0000007_Sec1.txt" in docs  # lower-case <doc>/<pair> schema
    assert "CDC_0000397_Sec1.txt" in docs  # <DiseaseFile> root without Document id
    assert "MPlusHerbsSuppls" in {d.get("source") for d in ds.corpus}


def test_queries_and_summaries(ds):
    assert ds.queries["TQ1"] == ("Noonan syndrome. What are the references with noonan syndrome and "
                                 "polycystic renal disease")
    assert ds.queries["TQ6"].startswith("ANESTHESIA EFFECT ON FXTAS PERSONS. Does Anesthesia")  # subject ends in "."
    alt = ds.meta["alt_queries"]
    assert len(alt["summary"]) == 104
    assert alt["summary"]["TQ1"] == "What is the relationship between Noonan syndrome and polycystic renal disease?"
    assert set(alt["paraphrase"]) <= set(ds.queries)


def _zip(path, qrels: str, csv_text: str) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("Q/All-qrels_x.txt", qrels)
        z.writestr("Q/All-answers.csv", csv_text)


def test_malformed_zip(tmp_path):
    good_csv = 'AnswerID,Answer\nA_1_Sec1.txt,"Question: q?\nURL: u\nAnswer: a.\n"\n'
    p = tmp_path / "z.zip"
    _zip(p, "1 4-Excellent A_1_Sec1.txt\n", good_csv)
    judged, texts = medquad.read_judged_zip(p)
    assert judged == [("1", 4, "A_1_Sec1.txt")] and texts == {"A_1_Sec1.txt": {"question": "q?", "answer": "a."}}
    _zip(p, "1 4-Excellent A_1_Sec1.txt\n2 Excellent A_1_Sec1.txt\n", good_csv)
    with pytest.raises(DataFormatError, match=r"z\.zip:Q/All-qrels_x\.txt:2: bad qrels line") as e:
        medquad.read_judged_zip(p)
    assert e.value.line == 2
    _zip(p, "", good_csv.replace("Question:", "Q:"))
    with pytest.raises(DataFormatError, match=r"All-answers\.csv:\d+: row is not"):
        medquad.read_judged_zip(p)


def test_truncated_medquad_xml(tmp_path):
    p = tmp_path / "0000001.xml"
    p.write_text('<?xml version="1.0"?>\n<Document id="0000001" source="GHR">\n<QAPairs>\n<QAPair pid="1">\n'
                 "<Question>q?</Question><Answer>a</Answer>\n")
    with pytest.raises(DataFormatError, match=r"0000001\.xml:6: malformed XML"):
        medquad.read_medquad_xml(p, "GHR")


def test_missing_liveqa(tmp_path):
    (tmp_path / "medquad").mkdir()
    with pytest.raises(DataNotFoundError, match="liveqa_med_2017"):
        medquad.build_medquad_liveqa(tmp_path)
