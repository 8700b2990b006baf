"""Readers: MedicineQA-zh (+ derived multi-round), LiveQA-Med training questions, Toyhom, cMedQQ; teacher queries."""
from __future__ import annotations

import json
import re

import pytest

from retrieval_kd import datasets
from retrieval_kd.data.medical_zh import (
    EVAL_TEMPLATES,
    TRAIN_TEMPLATES,
    build_medicineqa_aside,
    build_medicineqa_multiround,
    mention,
    parse_prompt,
)
from retrieval_kd.errors import DataFormatError
from retrieval_kd.teachers.queries import (
    examples_from_dataset,
    medicineqa_queries,
    read_jsonl_queries,
    write_jsonl_queries,
    zh_dialogue_examples,
)

PROMPT = "目标：\n...\n文档：\n[1]牛黄解毒片\n适应症:清热解毒。\n用于咽喉肿痛。\n用法用量:口服。\n\n[2]速效救心丸\n用法用量:含服。\n\n聊天记录:\n用户：上火吃牛黄解毒片有效果吗？"


def test_parse_prompt_splits_documents_into_attribute_records():
    records, question = parse_prompt(PROMPT)
    assert question == "上火吃牛黄解毒片有效果吗？"
    assert [(r["rank"], r["drug"], r["attribute"]) for r in records] == [
        (1, "牛黄解毒片", "适应症"), (1, "牛黄解毒片", "用法用量"), (2, "速效救心丸", "用法用量")]
    assert records[0]["text"] == "清热解毒。\n用于咽喉肿痛。"
    with pytest.raises(DataFormatError, match="用户"):
        parse_prompt(PROMPT.replace("用户：", "医生："))
    with pytest.raises(DataFormatError, match="before any attribute"):
        parse_prompt(PROMPT.replace("适应症:", "说明:"))


def test_mention_finds_full_or_shortened_names():
    assert mention("奥美拉唑肠溶胶囊", "奥美拉唑怎么吃") == "奥美拉唑"
    assert mention("美多芭", "美多芭的副作用有哪些？") == "美多芭"
    assert mention("华法林钠片", "阿司匹林能一起吃吗") is None


def test_medicineqa(shared_data):
    ds = datasets.load("medicineqa")
    assert ds.counts()["queries"] == 150 and ds.counts()["judged_queries"] == 150
    assert len(ds.corpus) == 318  # 324 (drug, attribute) sections, 318 distinct
    rec = {d["id"]: d for d in ds.corpus}
    gold = [rec[d] for d in ds.qrels["mqa_rag_000"]]
    assert [(g["drug"], g["attribute"]) for g in gold] == [("吡喹酮片", "不良反应")]
    assert ds.queries["mqa_rag_000"] == "血吸虫病吃吡喹酮片会有什么副作用吗？"
    assert medicineqa_queries(ds)["mqa_rag_000"] == ["吡喹酮片 不良反应"]


def test_multiround_is_deterministic_and_well_formed(shared_data):
    ds = datasets.load("medicineqa-multiround")
    again = build_medicineqa_multiround(shared_data)
    assert [c["turns"] for c in again.conversations] == [c["turns"] for c in ds.conversations]
    variants = {c["variant"] for c in ds.conversations}
    assert variants == {"pronoun", "distractor"} and len(ds.conversations) == 2 * 91
    for c in ds.conversations:
        turns = [t["utterance"] for t in c["turns"]]
        last = turns[-1]
        assert mention(c["drug"], last) is None, last  # the medicine is asked about by pronoun only
        assert any(p in last for p in EVAL_TEMPLATES["pronoun"])
        if c["variant"] == "distractor":
            assert c["distractor"] in turns[0] and c["drug"] in turns[2] and c["distractor"] != c["drug"]
        else:
            assert c["drug"] in turns[0]
        assert ds.qrels[c["id"]] == datasets.load("medicineqa").qrels[c["base_id"]]
    # eval and training templates share no wording except pronouns
    for key in ("intro", "old", "new", "ack"):
        assert not set(EVAL_TEMPLATES[key]) & set(TRAIN_TEMPLATES[key])


def test_aside_set_is_one_where_the_newest_medicine_is_not_the_answer(shared_data):
    from retrieval_kd.methods.drr.rewriters import LinkedRecency
    from retrieval_kd.methods.drr.safety import corrector_for
    from retrieval_kd.methods.drr.tagging import find_mentions
    from retrieval_kd.teachers.queries import dialogue_of

    ds, base = datasets.load("medicineqa-aside"), datasets.load("medicineqa")
    assert [c["turns"] for c in build_medicineqa_aside(shared_data).conversations] == [c["turns"] for c in
                                                                                    ds.conversations]
    assert len(ds.conversations) == 91 and {c["variant"] for c in ds.conversations} == {"aside"}
    gold_drugs = {d["id"]: d["drug"] for d in base.corpus}
    rule = LinkedRecency(corrector_for(base))
    norm = lambda x: re.sub(r"[\W_]+", "", x)  # noqa: E731 (queries are written word by word)
    carried = 0
    for c in ds.conversations:
        turns = [t["utterance"] for t in c["turns"]]
        assert c["drug"] in turns[0] and c["distractor"] in turns[2] and c["distractor"] != c["drug"]
        assert mention(c["drug"], turns[-1]) is None and mention(c["distractor"], turns[-1]) is None
        assert any(p in turns[-1] for p in EVAL_TEMPLATES["own"])
        assert ds.qrels[c["id"]] == base.qrels[c["base_id"]]
        assert c["distractor"] not in {gold_drugs[r] for r in ds.qrels[c["id"]]}  # the aside is never relevant
        if find_mentions(turns[-1], rule.corrector.names):
            continue  # the question names another database medicine itself: nothing is carried
        carried += 1
        query = norm(rule.rewrite(dialogue_of(c))[0].text)
        assert norm(c["distractor"]) in query and norm(c["drug"]) not in query  # recency carries the wrong one
    assert carried >= 80  # of 91
    for key in ("mine", "aside", "own"):  # eval wording is disjoint from training's
        assert not set(EVAL_TEMPLATES[key]) & set(TRAIN_TEMPLATES[key])


def test_zh_training_dialogues_with_asides_carry_the_first_medicine(shared_data):
    consult = datasets.load("zh-consult")
    mqa_names = {d["drug"] for d in datasets.load("medicineqa").corpus}
    plain = zh_dialogue_examples(consult, exclude=mqa_names, limit=200)
    syn = zh_dialogue_examples(consult, exclude=mqa_names, limit=200, aside=True)
    aside = [e for e in syn if e["id"].endswith("-aside")]
    assert not any(e["id"].endswith("-aside") for e in plain) and len(aside) >= 40
    for e in aside:
        own, other = e["names"]
        texts = [t["text"] for t in e["dialogue"]]
        assert own in e["queries"][0] and other not in e["queries"][0]  # the teacher query names the user's own
        first_own, first_other = (next(i for i, t in enumerate(texts) if name in t) for name in (own, other))
        assert first_own < first_other < len(texts) - 1 and own not in texts[-1]  # own named first, then other


def test_liveqa_train_and_zh_training_sets(shared_data):
    live = datasets.load("liveqa-med-train")
    assert live.counts()["queries"] == 446 and not any(q.startswith("TQ") for q in live.queries)
    ex = examples_from_dataset(live)
    assert len(ex) >= 440 and all(e["queries"] for e in ex)
    first = next(e for e in ex if e["id"] == "T1-Q1")
    assert first["queries"] == ["cardiac amyloidosis"] and "amyloidosis" in first["dialogue"][0]["text"]
    consult = datasets.load("zh-consult")
    assert len(consult.conversations) == 7644  # GB18030 CSV decoded
    assert consult.conversations[0]["turns"][0]["teacher_queries"] == ["高血压患者能吃党参吗？"]
    qq = datasets.load("cmedqq")
    assert qq.conversations and all(len(c["turns"][0]["teacher_queries"]) == 1 for c in qq.conversations)
    mqa_names = {d["drug"] for d in datasets.load("medicineqa").corpus}
    syn = zh_dialogue_examples(consult, exclude=mqa_names, limit=400)
    assert len(syn) >= 400
    for e in syn:
        text = " ".join(t["text"] for t in e["dialogue"])
        assert not any(n in text for n in mqa_names if len(n) >= 3), e
        assert all(n in text for n in e["names"]) and e["dialogue"][-1]["role"] == "user"
    # half the dialogues have their surface varied (lead-ins, tails, other or no acknowledgements, small talk)
    varied = sum(not any(t["text"] in TRAIN_TEMPLATES["ack"] for t in e["dialogue"]) or len(e["dialogue"]) not in (3, 5)
                 for e in syn)
    assert 0.2 * len(syn) < varied < 0.8 * len(syn)


def test_jsonl_teacher_queries_roundtrip_and_errors(tmp_path):
    path = write_jsonl_queries(tmp_path / "q.jsonl", {"a": ["x y", "z"], "b": ["阿司匹林 不良反应"]})
    assert read_jsonl_queries(path) == {"a": ["x y", "z"], "b": ["阿司匹林 不良反应"]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "queries": ["ok"]}) + "\n" + json.dumps({"id": "b", "queries": "no"}) + "\n")
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: field 'queries'"):
        read_jsonl_queries(bad)
