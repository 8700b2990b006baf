"""CAsT / iKAT topic files of any year by path; iKAT 2023 train + test; empty rewrites; unknown set names."""
from __future__ import annotations

import json
import shutil

import pytest

from retrieval_kd.data import cast
from retrieval_kd.data.formats.cast_topics import read_topic_file, schema
from retrieval_kd.errors import DataFormatError, DataNotFoundError, DataWarning


def _strip(convs, collection=None):
    return [{**c, "collection": collection or c["collection"]} for c in convs]


@pytest.mark.parametrize(("year", "name", "convs", "turns"), [
    ("ikat2024", "2024_test_topics.json", 17, 218), ("ikat2025", "2025_test_topics.json", 17, 188)])
def test_real_ikat_2024_2025(shared_data, year, name, convs, turns):
    path = shared_data / "cast" / year / name
    if not path.exists():
        pytest.skip(f"{path} not in the shared data")
    got = read_topic_file(path, collection=year)
    assert len(got) == convs and sum(len(c["turns"]) for c in got) == turns  # PROVENANCE.md counts
    assert got == cast.read_collection(shared_data, year)
    t = got[0]["turns"][2]
    assert set(t) == {"id", "utterance", "history", "manual", "response", "provenance"}
    assert [h["role"] for h in t["history"]] == ["user", "system"] * 2
    assert all(x["manual"] for c in got for x in c["turns"])
    if year == "ikat2025":
        assert t["id"] == "1-1_3" and t["manual"] == "How are the fruits I mentioned before for acid reflux?"
        assert t["provenance"][0] == "clueweb22-en0026-73-16809:6"
    else:
        assert got[0]["turns"][0]["id"] == "0_1" and got[0]["turns"][0]["provenance"] == ["clueweb22-en0017-23-13494:0"]


@pytest.mark.parametrize(("rel", "reader"), [
    ("2020/2020_manual_evaluation_topics_v1.0.json", "cast2020"),
    ("2022/2022_evaluation_topics_tree_v1.0.json", "cast2022"),
    ("ikat2023/2023_train_topics.json", "ikat2023"),
])
def test_any_year_by_path_matches_the_year_reader(shared_data, rel, reader):
    path = shared_data / "cast" / rel
    assert schema(path, json.loads(path.read_text())) == {"cast2020": "linear", "cast2022": "tree"}.get(reader, "ikat")
    by_path = read_topic_file(path, collection=reader)
    by_year = cast.read_collection(shared_data, reader)
    if reader == "cast2022":  # the year reader adds automatic rewrites from the second file
        by_year = [{**c, "turns": [{k: v for k, v in t.items() if k != "automatic"} for t in c["turns"]]}
                   for c in by_year]
    assert by_path == by_year


def test_cast2021_by_path_keeps_canonical_passages(shared_data):
    convs = read_topic_file(shared_data / "cast" / "2021" / "2021_manual_evaluation_topics_v1.0.json", "cast2021")
    year = cast.read_cast2021(shared_data)[0]
    assert [t["canonical"] for c in convs for t in c["turns"]] == [t["canonical"] for c in year for t in c["turns"]]


def test_ikat2023_reads_the_test_topics_when_present(shared_data, tmp_path):
    src = shared_data / "cast" / "ikat2023"
    dst = tmp_path / "cast" / "ikat2023"
    shutil.copytree(src, dst)
    test = [{"number": "9-1", "title": "t", "ptkb": {}, "turns": [
        {"turn_id": 1, "utterance": "hi", "resolved_utterance": "hi there", "response": "hello",
         "response_provenance": []}]}]
    (dst / "2023_test_topics.json").write_text(json.dumps(test))
    convs, passages = cast.read_ikat2023(tmp_path)
    assert len(convs) == 12 and convs[-1]["turns"][0]["id"] == "9-1_1" and len(passages) == 194
    assert len(cast.read_ikat2023(tmp_path, splits=("train",))[0]) == 11
    assert len(cast.read_ikat2023(tmp_path, splits=("test",))[0]) == 1
    with pytest.raises(DataNotFoundError, match="ikat2023 has no split 'dev'; known: train, test"):
        cast.read_ikat2023(tmp_path, splits=("dev",))


def test_ikat2023_description_is_truthful():
    from retrieval_kd.data.registry import available

    desc = available()["ikat2023"].description
    assert "no qrels" in desc and "official qrels" not in desc
    assert "official qrels" in available()["cast2021"].description


def test_unknown_set_names_list_the_known_ones(tmp_path):
    with pytest.raises(DataNotFoundError, match="unknown CAsT collection 'cast2018'; known: cast2019, .*ikat2025"):
        cast.read_collection(tmp_path, "cast2018")
    with pytest.raises(DataNotFoundError, match="unknown iKAT collection 'ikat2026'; known: ikat2023, ikat2024"):
        cast.read_ikat(tmp_path, "ikat2026")
    with pytest.raises(DataNotFoundError, match="no official qrels for 'ikat2024'; known: cast2019"):
        cast.read_official_qrels(tmp_path, "ikat2024")
    with pytest.raises(DataNotFoundError, match=r"ikat2024: none of .*2024_test_topics\.json found"):
        cast.read_ikat(tmp_path, "ikat2024")


IKAT = [{"number": "1-1", "title": "x", "ptkb": {}, "turns": [
    {"turn_id": 1, "utterance": "first", "resolved_utterance": "first one", "response": "r1",
     "response_provenance": ["c:1"]},
    {"turn_id": 2, "utterance": "second", "resolved_utterance": "  ", "response": "r2", "response_provenance": []}]}]


def test_empty_human_rewrite_warns_and_leaves_the_turn_out(write):
    p = write("ikat.json", json.dumps(IKAT))
    with pytest.warns(DataWarning, match=rf"{p}: turn 1-1_2: empty manual rewrite; .*human-rewrite row"):
        convs = read_topic_file(p)
    assert "manual" in convs[0]["turns"][0] and "manual" not in convs[0]["turns"][1]
    tsv = write("rw.tsv", "31_1\tWhat is throat cancer?\n31_2\t\n")
    with pytest.warns(DataWarning, match=rf"{tsv}:2: turn 31_2: empty manual rewrite"):
        assert cast.read_tsv_rewrites(tsv) == {"31_1": "What is throat cancer?"}
    linear = [{"number": 81, "turn": [{"number": 1, "raw_utterance": "a", "manual_rewritten_utterance": ""}]}]
    with pytest.warns(DataWarning, match="turn 81_1: empty manual rewrite"):
        assert "manual" not in read_topic_file(write("l.json", json.dumps(linear)))[0]["turns"][0]


@pytest.mark.parametrize(("data", "what"), [
    ([], "expected a non-empty JSON array of topics"),
    ([{"number": 1}], "missing 'turn'"),
    ([{"number": "1-1", "turns": [{"turn_id": 1, "utterance": "u"}]}], "field 'resolved_utterance'"),
    ([{"number": "1-1", "turns": [IKAT[0]["turns"][0]] * 2}], "turn id 1-1_1 appears twice"),
    ([{"number": "1-1", "turns": []}], "no turns"),
])
def test_malformed_topic_files(write, data, what):
    p = write("t.json", json.dumps(data))
    with pytest.raises(DataFormatError, match=what) as e:
        read_topic_file(p)
    assert e.value.path == str(p)
    with pytest.raises(DataFormatError, match=r"t2\.json:2: invalid JSON"):
        read_topic_file(write("t2.json", '[{"number": 1,\n "turn": [}]'))
