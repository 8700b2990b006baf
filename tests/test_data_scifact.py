"""SciFact from its CSV-in-zip: BEIR counts, numpy-repr abstracts, and malformed rows in a tiny zip."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from retrieval_kd.data import scifact
from retrieval_kd.errors import DataFormatError

_BUILT: dict = {}


def built(name: str, root: Path):
    if name not in _BUILT:
        _BUILT[name] = {"scifact": scifact.build_scifact, "scifact-train": scifact.build_scifact_train}[name](root)
    return _BUILT[name]


@pytest.mark.parametrize("name, queries, qrels", [("scifact", 300, 339), ("scifact-train", 809, 919)])
def test_counts_match_beir(shared_data, name, queries, qrels):
    ds = built(name, shared_data)
    c = ds.counts()
    assert (c["docs"], c["queries"], c["judged_queries"], c["qrels"]) == (5183, queries, queries, qrels)
    assert len(set(ds.doc_ids)) == 5183 and all(d["contents"] for d in ds.corpus)
    assert {d for v in ds.qrels.values() for d in v} <= set(ds.doc_ids)
    assert all(g == 1 for v in ds.qrels.values() for g in v.values())
    assert ds.meta["source"] and ds.meta["notes"] and ds.rel_threshold == 1


def test_splits_are_disjoint(shared_data):
    dev, train = built("scifact", shared_data), built("scifact-train", shared_data)
    assert not set(dev.queries) & set(train.queries)
    assert dev.meta["split"] == "claims_validation.csv" and train.meta["split"] == "claims_train.csv"


def test_abstract_with_apostrophe_sentences(shared_data):
    doc = {d["id"]: d for d in built("scifact", shared_data).corpus}["393001"]
    title, body = doc["contents"].split("\n")
    assert title == doc["title"] == ("High Km soluble 5'-nucleotidase from human placenta. Properties and allosteric "
                                     "regulation by IMP and ATP.")
    # in the CSV this sentence is `'A human placental soluble "high Km" 5\'-nucleotidase has ...'`
    assert body.startswith('A human placental soluble "high Km" 5\'-nucleotidase has been separated from "low Km" '
                           "5'-nucleotidase and nonspecific phosphatase by AMP-Sepharose affinity chromatography. "
                           "The enzyme was purified")
    assert "['" not in body and "'\n" not in doc["contents"] and "\\" not in body


def test_known_claim_and_qrels(shared_data):
    ds = built("scifact-train", shared_data)
    assert ds.queries["2"] == "1 in 5 million in UK have abnormal PrP positivity."
    assert ds.qrels["2"] == {"13734012": 1}


def test_parse_str_array():
    assert scifact.parse_str_array("['One.'\n 'Two\\'s \"x\".'\n \"It's three.\"]") == [
        "One.", "Two's \"x\".", "It's three."]
    assert scifact.parse_str_array("[]") == []
    assert scifact.parse_str_array("['a \\n b']") == ["a \n b"]
    with pytest.raises(ValueError, match="truncated"):
        scifact.parse_str_array("['a'\n ...\n 'z']")
    with pytest.raises(ValueError, match="unexpected text"):
        scifact.parse_str_array("['a', 'b']")
    with pytest.raises(ValueError, match="not a"):
        scifact.parse_str_array("'a'")
    assert scifact.parse_int_array("[ 5152028 11705328]") == ["5152028", "11705328"]
    with pytest.raises(ValueError):
        scifact.parse_int_array("[1, 2]")


CLAIM_HEADER = list(scifact.CLAIM_COLUMNS)


def tiny_zip(tmp_path: Path, corpus: list[list[str]], claims: list[list[str]]) -> Path:
    """A scifact/scifact.zip with the given corpus and validation-claims rows (headers added)."""
    def csv_text(header: list[str], rows: list[list[str]]) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerows([header, *rows])
        return buf.getvalue()

    (tmp_path / "scifact").mkdir()
    with zipfile.ZipFile(tmp_path / "scifact" / scifact.ZIP, "w") as z:
        z.writestr("corpus_train.csv", csv_text(list(scifact.CORPUS_COLUMNS), corpus))
        z.writestr("claims_validation.csv", csv_text(CLAIM_HEADER, claims))
    return tmp_path


GOOD_DOCS = [["11", "T one", "['First sentence.'\n 'It\\'s second.']", "False"],
             ["12", "T two", "[\"Doc two's only sentence.\"]", "False"]]


def test_tiny_zip_reads(tmp_path):
    root = tiny_zip(tmp_path, GOOD_DOCS, [["1", "Claim.", "", "", "[]", "[11 12]"],
                                          ["1", "Claim.", "12", "SUPPORT", "[0]", "[11 12]"]])
    ds = scifact.build_scifact(root)
    assert ds.corpus[0]["contents"] == "T one\nFirst sentence. It's second."
    assert ds.queries == {"1": "Claim."} and ds.qrels == {"1": {"11": 1, "12": 1}}


def test_malformed_abstract_names_file_and_line(tmp_path):
    docs = [*GOOD_DOCS, ["13", "T three", "['fine.'\n 'broken]", "False"]]
    root = tiny_zip(tmp_path, docs, [["1", "Claim.", "", "", "[]", "[11]"]])
    with pytest.raises(DataFormatError) as e:
        scifact.build_scifact(root)
    # header line 1, doc 11 spans lines 2-3, doc 12 line 4: doc 13 starts on line 5
    assert e.value.path.endswith("scifact.zip:corpus_train.csv") and e.value.line == 5
    assert e.value.field == "abstract" and "doc 13" in str(e.value) and ":5:" in str(e.value)


@pytest.mark.parametrize("row, field, what", [
    (["x1", "Claim.", "", "", "[]", "[11]"], "id", "numeric id"),
    (["2", "Claim.", "", "", "[]", "[99]"], "cited_doc_ids", "not in the corpus"),
    (["2", "Claim.", "", "", "[]", "[11, 12]"], "cited_doc_ids", "integer array"),
    (["1", "Other text.", "", "", "[]", "[11]"], "claim", "different text"),
])
def test_malformed_claim_rows(tmp_path, row, field, what):
    root = tiny_zip(tmp_path, GOOD_DOCS, [["1", "Claim.", "", "", "[]", "[11]"], row])
    with pytest.raises(DataFormatError, match=what) as e:
        scifact.build_scifact(root)
    assert e.value.path.endswith("scifact.zip:claims_validation.csv") and e.value.line == 3
    assert e.value.field == field


def test_short_row_and_missing_column(tmp_path):
    root = tiny_zip(tmp_path, [*GOOD_DOCS, ["13", "T three"]], [])
    with pytest.raises(DataFormatError, match="2 fields, the header has 4") as e:
        scifact.build_scifact(root)
    assert e.value.line == 5
    zpath = tmp_path / "other.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("corpus_train.csv", "doc_id,title,structured\n1,t,False\n")
    with pytest.raises(DataFormatError, match="lacks column") as e:
        scifact.read_corpus(zpath)
    assert e.value.field == "abstract" and e.value.line == 1
