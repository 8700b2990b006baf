"""Torch-free tagging pieces: dialogue layout, teacher labels, probabilities → terms, correction, query modes."""
from __future__ import annotations

import numpy as np
import pytest

from retrieval_kd.methods.drr.query import WeightedQuery, appended_words_repeat
from retrieval_kd.methods.drr.tagging import (
    MASK,
    Corrector,
    char_probs,
    find_mentions,
    finish,
    keep_mask,
    kept_entities,
    kept_terms,
    last_user,
    layout,
    make_queries,
    mask_entities,
    token_labels,
)

DIALOGUE = [{"role": "user", "text": "我之前一直在吃阿司匹林。"}, {"role": "assistant", "text": "好的。"},
            {"role": "user", "text": "后来换成了氯吡格雷片。"}, {"role": "user", "text": "这个药有什么副作用？"}]


def test_layout_puts_question_first_then_newest_history():
    text, spans = layout(DIALOGUE)
    segs = [text[s:e] for s, e in spans]
    assert segs == ["这个药有什么副作用？", "后来换成了氯吡格雷片。", "好的。", "我之前一直在吃阿司匹林。"]
    assert text.count("[SEP]") == 3 and last_user(DIALOGUE) == "这个药有什么副作用？"
    text1, spans1 = layout([{"role": "user", "utterance": "only turn"}])
    assert text1 == "only turn" and spans1 == [(0, 9)]


def test_keep_mask_en_stems_and_zh_bigrams():
    text = "My son has ear infections, is amoxicillin safe? The infection is bad."
    mask = keep_mask(text, ["amoxicillin", "ear infection"])
    kept = {text[i] for i in range(len(text)) if mask[i]}
    words = [w.strip(",.?") for w in text.split() if all(mask[text.index(w):text.index(w) + 1])]
    assert "amoxicillin" in words and "infections" in words and "son" not in words and "is" not in words
    assert "?" not in kept
    zh = "后来换成了氯吡格雷片。"
    m = keep_mask(zh, ["氯吡格雷片 不良反应"])
    assert "".join(c for c, k in zip(zh, m) if k) == "氯吡格雷片"


def test_token_labels_and_char_probs():
    offsets = [(0, 0), (0, 2), (2, 5), (5, 6), (0, 0)]
    mask = np.array([0, 1, 0, 0, 0, 1], dtype=np.int8)
    assert token_labels(offsets, mask).tolist() == [-100, 1, 0, 1, -100]
    cp = char_probs(6, offsets, np.array([0.9, 0.2, 0.7, 0.4, 0.9]))
    assert cp.tolist() == pytest.approx([0.2, 0.2, 0.7, 0.7, 0.7, 0.4])


def test_kept_terms_from_probabilities():
    text, spans = layout(DIALOGUE)
    cp = np.zeros(len(text), dtype=np.float32)
    for word in ("副作用", "氯吡格雷片"):
        s = text.index(word)
        cp[s : s + len(word)] = 0.9
    s = text.index("阿司匹林")
    cp[s : s + 4] = 0.3  # below the threshold: the distractor medicine is dropped
    assert kept_terms(text, spans, cp, threshold=0.5) == ["副作用", "氯吡格雷片"]
    en = "Amoxicillin dose. what dose of amoxicillin for kids"
    cp = np.array([0.8 if c.isupper() else 0.1 for c in en], dtype=np.float32)  # one wordpiece of a word is enough
    assert kept_terms(en, [(0, len(en))], cp) == ["Amoxicillin"]  # the later 'amoxicillin' is a duplicate


def test_corrector_fixes_misspelt_terms_against_the_vocabulary():
    corpus = ["Amoxicillin is an antibiotic. amoxicillin dosage", "Zolmitriptan for migraine. zolmitriptan tablets"]
    c = Corrector.from_texts(corpus, names=["阿莫西林胶囊", "氯吡格雷片"])
    assert c.correct("amoxicilin") == "amoxicillin"
    assert c.correct("zolmitriptin") == "zolmitriptan"
    assert c.correct("migrane") == "migrane"  # 'migraine' seen once only (below min_count): left alone
    assert c.correct("dose") == "dose"  # short words are never changed
    assert c.correct("阿莫西林胶襄") == "阿莫西林胶囊"  # a wrong character in a medicine name
    assert c.correct("阿莫西林") == "阿莫西林"  # a shortened name is already a match
    assert c.correct("头孢") == "头孢"


def test_make_queries_modes():
    (q,) = make_queries("what is it?", ["aspirin", "dose"], "append", boost=2)
    assert q == "what is it? aspirin dose" and isinstance(q, WeightedQuery)  # written once, weighted
    assert dict(q.terms) == {"what": 1.0, "is": 1.0, "it": 1.0, "aspirin": 2.0, "dose": 2.0}
    (q,) = make_queries("what is morphine", ["morphine"], "append", boost=2)
    assert q == "what is morphine" and dict(q.terms)["morphine"] == 3.0  # not 'morphine morphine morphine'
    assert q.lucene() == "what is morphine^3" and appended_words_repeat(q, "what is morphine") == []
    assert make_queries("what is it?", ["aspirin"], "replace") == ["aspirin"]
    assert make_queries("what is it?", ["aspirin"], "both", boost=1) == ["what is it? aspirin", "aspirin"]
    assert make_queries("q", [], "replace") == ["q"]
    with pytest.raises(ValueError):
        make_queries("q", ["x"], "merge")


def test_entity_masking_labels_and_terms():
    names = ["阿司匹林肠溶片", "氯吡格雷片"]
    assert find_mentions("吃阿司匹林和氯吡格雷片", names) == [(1, 5), (6, 11)]  # shortened mention found too
    masked, ents = mask_entities("吃阿司匹林和氯吡格雷片", names)
    assert masked == f"吃{MASK}和{MASK}" and [e[2] for e in ents] == ["阿司匹林", "氯吡格雷片"]
    text, spans, ents = layout(DIALOGUE, names)
    assert text.count(MASK) == 2 and [e[2] for e in ents] == ["氯吡格雷片", "阿司匹林"]  # newest first
    mask = keep_mask(text, ["氯吡格雷片 不良反应"], ents)
    (s1, e1, _), (s2, e2, _) = ents
    assert mask[s1:e1].all() and not mask[s2:e2].any()  # the teacher searched the new medicine, not the old one
    cp = np.zeros(len(text), dtype=np.float32)
    cp[s1 + 1 : s1 + 3] = 0.9  # the [MASK] token's probability covers its characters
    s = text.index("副作用")
    cp[s : s + 3] = 0.9
    assert kept_terms(text, spans, cp, 0.5, entities=ents) == ["副作用", "氯吡格雷片"]
    c = Corrector(names=names, aspects={"副作用": "不良反应", "作用": "适应症"})
    assert c.aspects("这个药有什么副作用？") == ["不良反应"]  # the longer wording wins
    assert finish(DIALOGUE, text, spans, cp, ents, 0.5, "append", 1, c) == ["这个药有什么副作用？ 氯吡格雷片 不良反应"]


def test_shortened_names_are_found():
    names = ["999皮炎平", "盐酸丁螺环酮片", "阿托伐他汀钙片", "华法林钠片", "碳酸钙D3咀嚼片(II)", "氯化钾片"]
    text = "皮炎平、丁螺环酮、阿托伐他汀、华法林、碳酸钙D3、氯化钾和氯化钠"
    assert [text[s:e] for s, e in find_mentions(text, names)] == ["皮炎平", "丁螺环酮", "阿托伐他汀", "华法林",
                                                                  "碳酸钙D3", "氯化钾"]
    assert find_mentions("氯化钠注射液", ["氯化钾片"]) == []  # '氯化' alone is not an alias: too short after the cation


def test_kept_entities_question_first_then_one_carried():
    names = ["阿司匹林肠溶片", "氯吡格雷片"]
    text, spans, ents = layout(DIALOGUE, names)  # question names no medicine; history: 氯吡格雷片 (newer), 阿司匹林
    (s1, e1, _), (s2, e2, _) = ents
    cp = np.zeros(len(text), dtype=np.float32)
    cp[s1:e1], cp[s2:e2] = 0.3, 0.2
    assert kept_entities(spans, cp, ents, 0.5, carry=False) == []
    assert kept_entities(spans, cp, ents, 0.5, carry=True) == ["氯吡格雷片"]  # the more probable one, below threshold
    cp[s2:e2] = 0.9
    assert kept_entities(spans, cp, ents, 0.5) == ["阿司匹林"]  # the only kept history entity
    cp[s1:e1] = 0.8
    assert kept_entities(spans, cp, ents, 0.5) == ["氯吡格雷片"]  # at most one: the newest kept
    d = [{"role": "user", "text": "我在吃阿司匹林。"}, {"role": "user", "text": "氯吡格雷片能一起吃吗？"}]
    text, spans, ents = layout(d, names)
    cp = np.full(len(text), 0.9, dtype=np.float32)
    assert kept_entities(spans, cp, ents, 0.5) == ["氯吡格雷片", "阿司匹林"]  # the question's own, then history
    c = Corrector(names=names, aspects={"一起吃": "药物相互作用"})
    assert finish(d, text, spans, cp, ents, 0.5, "append", 1, c, keep="entities", carry=True) == [
        "氯吡格雷片能一起吃吗？ 阿司匹林 药物相互作用"]  # the question's own medicine is weighted, not rewritten
    with pytest.raises(ValueError, match="keep"):
        finish(d, text, spans, cp, ents, 0.5, "append", 1, c, keep="all")
