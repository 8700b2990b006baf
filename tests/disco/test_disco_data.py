"""Issue 15 data: CANARD train conversations, the disco-train pool, the cast-eval sets and the leak checks."""
from __future__ import annotations

from collections import Counter

import pytest

from retrieval_kd.data.formats.cast_topics import canard_train_conversations
from retrieval_kd.errors import ConfigError, DataFormatError


@pytest.fixture(scope="module")
def pair(shared_data):
    from retrieval_kd import datasets

    return datasets.load("disco-train"), datasets.load("cast-eval")


def test_canard_train_history_rebuilt_from_earlier_questions(shared_data):
    convs = canard_train_conversations(shared_data / "canard_train")
    assert len(convs) == 4383 and sum(len(c["turns"]) for c in convs) == 31526  # PROVENANCE counts
    unitas = next(c for c in convs if c["id"] == "C_2ba58216460d43aa986fc0e897537239_0")["turns"]
    t3 = unitas[2]
    assert t3["id"] == "canard_C_2ba58216460d43aa986fc0e897537239_0_3"
    assert t3["utterance"] == "who did they play in the playoffs"
    assert t3["manual"] == "who did the Colts play in the playoffs?" and t3["response"] == "colts playoffs cleveland browns"
    assert t3["history"] == [{"role": "user", "text": "what team did unitas play for"},
                             {"role": "system", "text": "team unitas colts"},
                             {"role": "user", "text": "how many games did the colts win"},
                             {"role": "system", "text": "games colts colts victories record"}]


def test_canard_train_misaligned_or_malformed_rows_name_file_and_line(tmp_path):
    rows = ["D_0_q#0\twho was he", "D_0_q#1\twhat did he do"]
    (tmp_path / "train.question.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "train.rewrite.tsv").write_text("D_0_q#0\twho was Bob\nD_0_q#2\twhat did Bob do\n")
    (tmp_path / "train.answer.tokens.tsv").write_text("D_0_q#0\tbob\nD_0_q#1\tbob | songs\n")
    with pytest.raises(DataFormatError) as e:
        canard_train_conversations(tmp_path)
    assert e.value.path == str(tmp_path / "train.rewrite.tsv") and e.value.line == 2
    (tmp_path / "train.rewrite.tsv").write_text("D_0_q#0\twho was Bob\nD_0 q1\twhat did Bob do\n")
    with pytest.raises(DataFormatError, match="expected '<QuAC dialog id>_q#<n>") as e:
        canard_train_conversations(tmp_path)
    assert e.value.line == 2


def test_disco_train_pool_holds_no_evaluation_passage(pair):
    train, ev = pair
    assert train.meta["collections"] == {"cast2019": 748, "cast2020": 216, "cast2022": 205, "canard": 3430,
                                         "canard_train": 31526, "ikat2024": 218}
    assert Counter(d["source"] for d in train.corpus) == {"canard-train-keywords": 4383, "canard-dialogue": 490,
                                                         "ikat2024-response": 218, "cast2022-response": 203}
    judged = {d for q in ev.qrels.values() for d in q}
    texts = {d["contents"] for d in ev.corpus if d["id"] in judged}
    assert not judged & set(train.doc_ids) and not texts & set(train.doc_texts)  # not transductive
    shared = set(train.doc_ids) & set(ev.doc_ids)
    assert len(shared) == 203 and all(d.startswith("CAST22-RESPONSE_") for d in shared)  # distractors only
    assert not {t["id"] for c in train.conversations for t in c["turns"]} & set(ev.queries)
    assert train.qrels == {}


def test_cast_eval_sets(pair):
    _, ev = pair
    assert ev.meta["collections"] == {"cast2021": 239, "ikat2023": 95, "ikat2025": 188} and len(ev.corpus) == 820
    from retrieval_kd.bench.cast import split_queries

    assert {k: len(v) for k, v in split_queries(ev).items()} == {"cast2021": 239, "ikat2023": 76, "ikat2025": 157}
    t = next(t for c in ev.conversations if c["collection"] == "ikat2025" for t in c["turns"] if t["id"].endswith("1-1_3"))
    assert t["id"] == "ikat2025_1-1_3" and ev.qrels[t["id"]] == {"IKAT-RESPONSE_2025_1-1_3": 1}
    doc = next(d for d in ev.corpus if d["id"] == "IKAT-RESPONSE_2025_1-1_3")
    assert doc["contents"] == t["response"] and all(h["text"] != t["response"] for h in t["history"])


def test_leak_checks_by_id_by_rewrite_and_by_collection(pair, tmp_path):
    from retrieval_kd.data.dataset import Dataset
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import training_turns

    train, ev = pair
    cfg = DiscoConfig.model_validate({"data": {"collections": ["cast2022", "ikat2024"]}})
    assert len(training_turns(cfg, train, ev)) == 205 + 218
    src = next(t for c in ev.conversations if c["collection"] == "ikat2023" for t in c["turns"]
               if len(t["manual"].split()) >= 5)
    copy = Dataset("copy", [], {}, {}, [{"id": "x", "collection": "mine", "turns": [
        {"id": "other-id", "utterance": "u", "history": [], "manual": src["manual"].upper()}]}])
    mine = cfg.model_copy(update={"data": cfg.data.model_copy(update={"collections": ["mine"]})})
    with pytest.raises(ConfigError, match="have the human rewrite of an evaluation turn"):
        training_turns(mine, copy, ev)
    copy.conversations[0]["collection"] = "ikat2025"
    bad = cfg.model_copy(update={"data": cfg.data.model_copy(update={"collections": ["ikat2025"]})})
    copy.conversations[0]["turns"][0]["manual"] = "short"
    with pytest.raises(ConfigError, match="evaluation collections"):
        training_turns(bad, copy, ev)


def test_sample_turns_and_its_config_check():
    from retrieval_kd.config import load_config
    from retrieval_kd.methods.disco.config import DiscoConfig
    from retrieval_kd.methods.disco.trainer import sample_turns

    turns = [{"id": f"a{i}", "collection": "a"} for i in range(10)] + [{"id": "b0", "collection": "b"}]
    kept = sample_turns(turns, {"a": 3}, seed=0)
    assert len(kept) == 4 and kept[-1]["id"] == "b0" and kept == sample_turns(turns, {"a": 3}, seed=0)
    assert [t["id"] for t in kept[:3]] == sorted((t["id"] for t in kept[:3]), key=lambda x: int(x[1:]))
    with pytest.raises(ConfigError, match=r"data.sample.canard_train: not one of data.collections"):
        load_config(None, DiscoConfig, ["data.sample={canard_train: 10}"])


def test_ikat2024_dev_is_judged_by_its_own_responses_over_the_cast_eval_corpus(shared_data):
    from retrieval_kd import datasets

    ev, dev = datasets.load("cast-eval"), datasets.load("ikat2024-dev")
    assert {c["collection"] for c in dev.conversations} == {"ikat2024"} and len(dev.conversations) == 17
    assert len(dev.qrels) == 191 and set(ev.doc_ids) < set(dev.doc_ids)
    assert len(dev.doc_ids) - len(ev.doc_ids) == sum(1 for c in dev.conversations for t in c["turns"] if t["response"])
    for q, rel in dev.qrels.items():  # each judged turn: its own response, a document of the set
        (doc,) = rel
        assert doc.startswith("IKAT-RESPONSE_2024_") and doc.endswith("_" + q.split("_", 1)[1])
