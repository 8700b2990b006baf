"""CAsT / iKAT readers on the real topic files, the cast-mini / cast-train datasets, malformed input."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from retrieval_kd.data import cast
from retrieval_kd.errors import DataFormatError, DataNotFoundError


@pytest.fixture(scope="module")
def train(shared_data):
    from retrieval_kd import datasets

    return datasets.load("cast-train")


def test_topic_counts(shared_data):
    assert [len(cast.read_cast2019(shared_data)), len(cast.read_cast2020(shared_data))] == [80, 25]
    turns = {c: sum(len(x["turns"]) for x in cast.read_collection(shared_data, c))
             for c in ("cast2019", "cast2020", "cast2021", "cast2022", "ikat2023")}
    # PROVENANCE: 2019 = 269 training + 479 evaluation turns; 2022 = 205 user turns; iKAT train 95 turns
    assert turns == {"cast2019": 748, "cast2020": 216, "cast2021": 239, "cast2022": 205, "ikat2023": 95}
    c19 = cast.read_cast2019(shared_data)
    assert sum(1 for c in c19 for t in c["turns"] if "manual" in t) == 479 + 23


def test_histories(shared_data):
    convs, passages = cast.read_cast2021(shared_data)
    t3 = convs[0]["turns"][2]
    assert t3["id"] == "106_3"
    assert [h["role"] for h in t3["history"]] == ["user", "system", "user", "system"]
    assert t3["history"][1]["text"] == passages[convs[0]["turns"][0]["canonical"]]
    assert t3["response"] == passages[t3["canonical"]]  # its own passage is not in its history
    assert all(h["text"] != t3["response"] for h in t3["history"])
    c22, docs = cast.read_cast2022(shared_data)
    assert len(docs) == 203 and sum(len(c["turns"]) for c in c22) == 205
    t = {x["id"]: x for c in c22 for x in c["turns"]}["133_3-2"]  # on the branch that starts at system turn 3-1
    assert t["history"][-1]["role"] == "system"
    assert t["history"][-1]["text"] == docs["CAST22-RESPONSE_133_3-1"]
    provs = [p for c in c22 for x in c["turns"] for p in x.get("provenance", [])]
    assert "MARCO_16_1884092099-2" in provs and not [p for p in provs if p.startswith("-")]


def test_cast_mini(mini):
    assert Counter(d["source"] for d in mini.corpus) == {
        "cast2021-canonical": 235, "ikat2023-provenance": 194, "cast2022-response": 203}
    assert len(set(mini.doc_ids)) == 632
    assert "MARCO_D684519-2#b" in mini.doc_ids  # one canonical id carries two different passages
    assert len(mini.queries) == 239 + 95
    assert len(mini.judged_queries()) == 239 + 76  # iKAT turns without provenance are unjudged
    assert mini.qrels["106_1"] == {"MARCO_D59865-7": 1}
    assert mini.meta["collections"] == {"cast2021": 239, "ikat2023": 95}
    assert all(d in set(mini.doc_ids) for q in mini.qrels.values() for d in q)


def test_cast_train_has_no_evaluation_turn(mini, train):
    eval_ids = {t["id"] for c in mini.conversations for t in c["turns"]}
    train_ids = {t["id"] for c in train.conversations for t in c["turns"]}
    assert len(train_ids) == 748 + 216 + 205 + 3430 and not (eval_ids & train_ids)
    assert {c["collection"] for c in train.conversations} == {"cast2019", "cast2020", "cast2022", "canard"}
    assert train.qrels == {} and train.doc_texts[: len(mini.corpus)] == mini.doc_texts  # text only, no labels
    canard = [d for d in train.corpus if d["source"] == "canard-dialogue"]
    assert len(canard) == 490 == len(train.corpus) - len(mini.corpus)  # one document per QuAC dialogue
    zappa = next(t for c in train.conversations if c["collection"] == "canard" for t in c["turns"]
                 if t["utterance"] == "When did they disband?")
    assert zappa["history"][0] == {"role": "user", "text": "Frank Zappa. Disbandment"}
    assert zappa["manual"] == "When did Zappa and the Mothers of Invention disband?"


def _root_with(tmp_path, rel: str, text: str):
    path = tmp_path / "cast" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_json_names_file_and_line(tmp_path):
    p = _root_with(tmp_path, "2020/2020_manual_evaluation_topics_v1.0.json", '[{"number": 81,\n "turn": [\n')
    with pytest.raises(DataFormatError) as e:
        cast.read_cast2020(tmp_path)
    assert e.value.path == str(p) and e.value.line == 3


def test_bad_rewrite_tsv_line(tmp_path):
    p = _root_with(tmp_path, "2019/x.tsv", "31_1\tWhat is throat cancer?\n31_2 no tab here\n")
    with pytest.raises(DataFormatError) as e:
        cast.read_tsv_rewrites(p)
    assert e.value.line == 2


def test_missing_field_and_file(tmp_path):
    _root_with(tmp_path, "ikat2023/2023_train_topics.json", json.dumps([{"number": "1-1", "turns": [{"turn_id": 1}]}]))
    with pytest.raises(DataFormatError, match="utterance"):
        cast.read_ikat2023(tmp_path)
    with pytest.raises(DataNotFoundError):
        cast.read_cast2021(tmp_path)
