"""Chinese medical sets: MedicineQA (PULSE-EVAL) + its derived multi-round stress test, Toyhom ask→title, cMedQQ."""
from __future__ import annotations

import csv
import hashlib
import io
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from retrieval_kd.data.dataset import Dataset, Qrels, read_jsonl
from retrieval_kd.data.files import need
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError
from retrieval_kd.text.medicine_zh import FORMS

MQA_FILE = "medicineqa_pulse/MedicineQA_RAG.jsonl"
TOYHOM_CSV = "chinese_medical_dialogue_toyhom/样例_内科5000-6000.csv"
CMEDQQ = "chineseblue_med/cMedQQ"
ATTRIBUTES = ("适应症", "不良反应", "用法用量", "禁忌症", "药物相互作用", "注意事项", "存储方式", "孕妇禁忌", "儿童禁忌",
              "老年人禁忌", "哺乳期禁忌")
_ATTR_LINE = re.compile(rf"(?m)^({'|'.join(ATTRIBUTES)})[:：]")
_DOC_HEAD = re.compile(r"(?m)^\[(\d+)\]")


def parse_prompt(prompt: str, path: Path | str = MQA_FILE, line: int | None = None) -> tuple[list[dict], str]:
    """(evidence records [{"rank","drug","attribute","text"}], user question) of one MedicineQA prompt."""
    try:
        docs = prompt.split("文档：", 1)[1].split("聊天记录:", 1)[0]
        question = prompt.split("聊天记录:", 1)[1].strip()
    except IndexError:
        raise DataFormatError(path, "prompt lacks '文档：' or '聊天记录:'", line=line, field="question") from None
    if not question.startswith("用户：") or question.count("用户：") != 1:
        raise DataFormatError(path, "expected exactly one '用户：' turn", line=line, field="question")
    records = []
    parts = _DOC_HEAD.split(docs)
    for j in range(1, len(parts), 2):
        drug, _, body = parts[j + 1].strip("\n").partition("\n")
        segs = _ATTR_LINE.split(body)
        if segs[0].strip():
            raise DataFormatError(path, f"document [{parts[j]}] {drug!r}: text before any attribute line",
                                  line=line, field="question")
        for k in range(1, len(segs), 2):
            records.append({"rank": int(parts[j]), "drug": drug.strip(), "attribute": segs[k],
                            "text": segs[k + 1].strip()})
    if not records:
        raise DataFormatError(path, "no evidence records in prompt", line=line, field="question")
    return records, question[len("用户："):].strip()


def read_medicineqa(path: Path) -> tuple[list[dict], dict[str, str], Qrels]:
    """(record corpus, questions, qrels): records deduplicated by (drug, attribute, text), ids by first use."""
    corpus: list[dict] = []
    ids: dict[tuple[str, str, str], str] = {}
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    for line_no, row in read_jsonl(path):
        records, question = parse_prompt(row.get("question", ""), path, line_no)
        qid = f"mqa_rag_{line_no - 1:03d}"
        queries[qid] = question
        for r in records:
            key = (r["drug"], r["attribute"], r["text"])
            if key not in ids:
                ids[key] = f"rec{len(ids) + 1:04d}"
                corpus.append({"id": ids[key], "contents": f"{r['drug']}\n{r['attribute']}:{r['text']}",
                               "drug": r["drug"], "attribute": r["attribute"]})
            qrels.setdefault(qid, {})[ids[key]] = 1
    return corpus, queries, qrels






def mention(drug: str, text: str) -> str | None:
    """The longest form of `drug` named in `text`: full name, else the name without its dosage form."""
    if drug in text:
        return drug
    for form in FORMS:
        if drug.endswith(form) and len(drug) - len(form) >= 2 and drug[: -len(form)] in text:
            return drug[: -len(form)]
    return None


# Eval and training dialogues use different wordings (pronouns are a closed class and may repeat).
EVAL_TEMPLATES = {
    "intro": ["我最近在吃{d}。", "医生给我开了{d}。", "我家老人在用{d}。", "我手上有一盒{d}。"],
    "ack": ["好的，请问您想了解哪方面的信息？", "明白，请问有什么可以帮您？"],
    "old": ["我之前一直在吃{d}。", "以前医生给我开的是{d}。"],
    "new": ["后来医生给我换成了{d}。", "现在改用{d}了。"],
    "pronoun": ["这个药", "这药", "它"],
    # 'aside' dialogues: a second medicine named later but not the user's own (someone else's, or stopped), then
    # the question about the user's own one: the newest mention is not the answer
    "mine": ["我最近在吃{d}。", "医生给我开了{d}。"],
    "aside": ["我爱人吃的是{d}，跟我的不一样。", "以前吃过{d}，早就停了。"],
    "own": ["我现在吃的这个药", "我吃的这个"],
}
# Neutral mentions stand in both the earlier and the later slot of training dialogues, so that the tagger learns
# the pronoun's referent from recency (the later mention), not from wording that only the training templates use.
_NEUTRAL = ["我在服{d}。", "大夫给开的是{d}。", "家里有{d}。", "我用的是{d}。"]
TRAIN_TEMPLATES = {
    "intro": ["大夫让我服用{d}。", "我妈妈在服{d}。", "最近开始用{d}了。", "朋友推荐了{d}。"],
    "ack": ["嗯，您具体想问什么？", "收到，请说。"],
    "old": ["我原来用的是{d}。", "之前服用过{d}。", "上个月在吃{d}。"] + _NEUTRAL,
    "new": ["这周开始改服{d}。", "医院现在给开了{d}。", "目前在用{d}。"] + _NEUTRAL,
    "pronoun": ["该药", "这种药", "此药", "这个药"],
    "mine": ["大夫让我服用{d}。", "最近开始用{d}了。", "我在服{d}。"],
    "aside": ["我爸在吃{d}，不是我。", "之前用过{d}，已经不用了。", "我朋友说{d}不错，我没吃。"],
    "own": ["我现在用的药", "我正在吃的药", "我这个药"],
}
# Training dialogues also carry conditions (a disease named earlier, asked about by pronoun later).
_NEUTRAL_CONDITION = ["医生说是{d}。", "我有{d}。", "查出来是{d}。"]
TRAIN_TEMPLATES_CONDITION = {
    "intro": ["我被诊断出{d}。", "家里孩子得了{d}。", "体检查出来是{d}。"],
    "ack": TRAIN_TEMPLATES["ack"],
    "old": ["我以前得过{d}。", "去年查出过{d}。"] + _NEUTRAL_CONDITION,
    "new": ["这次医生说是{d}。", "现在确诊了{d}。"] + _NEUTRAL_CONDITION,
    "pronoun": ["这个病", "这病", "该病"],
    "mine": ["我被诊断出{d}。", "体检查出来是{d}。"],
    "aside": ["我妈以前得过{d}。", "朋友得过{d}，不是我。"],
    "own": ["我这个病", "我现在的病"],
}


# Training-only variation of the dialogues' surface (the eval set keeps its fixed wording): lead-ins and tails around
# mentions, other acknowledgements, dropped acknowledgements, small talk between turns. A tagger that sees mostly
# [UNK] for Chinese characters must learn the referent from the dialogue's structure, not one template's shape.
TRAIN_VARIATION = {
    "lead": ["对了，", "另外，", "嗯，", "你好，", "请问，"],
    "tail": ["了", "，一天两次", "，效果还可以", "，吃了一个星期", "，是医院开的", "，没什么不舒服"],
    "ack": ["行，我来帮您看看。", "了解，请继续。", "嗯。", "您说。"],
    "chat": ["谢谢。", "我有点担心。", "最近睡得不太好。"],
}


def vary_dialogue(turns: list[dict], key: str, p: float = 0.5) -> list[dict]:
    """A training dialogue with its surface varied (TRAIN_VARIATION); choices hash `key`, the question is kept."""
    rng = _seeded("vary:" + key)
    v = TRAIN_VARIATION
    if rng.random() >= p:
        return turns
    out: list[dict] = []
    for t in turns[:-1]:
        text = t["utterance"]
        if t["role"] == "assistant":
            r = rng.random()
            if r < 0.3:
                continue
            text = rng.choice(v["ack"]) if r < 0.6 else text
        else:
            if rng.random() < 0.5:
                text = rng.choice(v["lead"]) + text
            if text.endswith("。") and rng.random() < 0.5:
                text = text[:-1] + rng.choice(v["tail"]) + "。"
        out.append({**t, "utterance": text})
        if t["role"] == "user" and rng.random() < 0.2:
            out.append({**t, "utterance": rng.choice(v["chat"])})
    out.append(turns[-1])
    return [{**t, "id": str(i + 1)} for i, t in enumerate(out)]


def _seeded(key: str) -> random.Random:
    """A random generator seeded by a hash of `key` (same choices in every run and process)."""
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))


def _second_medicine(drug: str, question: str, drugs: list[str], rng: random.Random) -> str:
    """Another database medicine: not `drug`, not named in `question`, and not a longer form of `drug`."""
    return rng.choice([d for d in drugs if d != drug and mention(d, question) is None and mention(drug, d) is None])


def make_aside(cid: str, question: str, drug: str, said: str, drugs: list[str], templates: dict) -> dict:
    """An 'aside' dialogue: `drug` named first as the user's own, another medicine named later as someone else's
    (or one stopped), then `question` about the user's own by a possessive phrase. Recency points at the wrong
    medicine; choices hash `cid` (salted apart from `make_dialogues`)."""
    rng = _seeded("aside:" + cid)
    pick = lambda key: rng.choice(templates[key])  # noqa: E731
    other = _second_medicine(drug, question, drugs, rng)
    texts = [("user", pick("mine").format(d=drug)), ("assistant", pick("ack")), ("user", pick("aside").format(d=other)),
             ("assistant", pick("ack")), ("user", question.replace(said, pick("own")))]
    turns = [{"id": str(i + 1), "role": r, "utterance": t} for i, (r, t) in enumerate(texts)]
    return {"id": f"{cid}-aside", "variant": "aside", "distractor": other, "turns": turns, "base_id": cid,
            "drug": drug}


def make_dialogues(cid: str, question: str, drug: str, said: str, drugs: list[str], templates: dict,
                   extra: dict | None = None) -> list[dict]:
    """Two dialogues ('pronoun', 'distractor') asking `question` about `drug` by pronoun; choices hash `cid`."""
    rng = _seeded(cid)
    pick = lambda key: rng.choice(templates[key])  # noqa: E731
    asked = question.replace(said, pick("pronoun"))
    other = _second_medicine(drug, question, drugs, rng)

    def turn(i: int, role: str, text: str) -> dict:
        return {"id": str(i), "role": role, "utterance": text}

    base = {"base_id": cid, "drug": drug, **(extra or {})}
    pron = [turn(1, "user", pick("intro").format(d=drug)), turn(2, "assistant", pick("ack")), turn(3, "user", asked)]
    dist = [turn(1, "user", pick("old").format(d=other)), turn(2, "assistant", pick("ack")),
            turn(3, "user", pick("new").format(d=drug)), turn(4, "assistant", pick("ack")), turn(5, "user", asked)]
    return [{"id": f"{cid}-pronoun", "variant": "pronoun", "turns": pron, **base},
            {"id": f"{cid}-distractor", "variant": "distractor", "distractor": other, "turns": dist, **base}]


_FORM_ALT = "|".join(sorted(FORMS + ("注射液", "喷雾剂", "栓", "冲剂"), key=len, reverse=True))
_DRUG = re.compile(r"(?:吃|用|服用|喝|服|吃了|用了|开了|口服)([\u4e00-\u9fff]{2,9}?(?:" + _FORM_ALT + "))")
_NOT_NAME = re.compile(r"^(了|的|过|点|些|一|几|这|那|什么|哪|药|完|食)|[了的吗呢吧啊么和与或及是用吃]")


_CONDITION = re.compile(r"^[\u4e00-\u9fff]{0,8}(病|炎|症|癌|瘤|综合征|结石|溃疡|高血压|肝硬化|哮喘|痛风|中风|梗塞|梗死|贫血)$")
_GENERIC = {"并发症", "后遗症", "慢性病", "综合症", "疾病", "常见疾病", "遗传疾病", "病", "炎", "症"}


def mine_condition_names(texts: Iterable[str], min_count: int = 3) -> list[str]:
    """Condition names (jieba words ending in 病/炎/症/癌…) seen at least `min_count` times in training texts."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    c = Counter(w for t in texts for w in jieba.lcut(t) if len(w) >= 2 and _CONDITION.match(w))
    return sorted(w for w, n in c.items() if n >= min_count and w not in _GENERIC)


def mine_drug_names(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Medicine names mentioned after a taking-verb ('吃…片', '服用…胶囊') in training texts (noisy gazetteer)."""
    c = Counter(m for t in texts for m in _DRUG.findall(t))
    return sorted(k for k, v in c.items() if v >= min_count and not _NOT_NAME.search(k))


_MQA_META = {
    "source": "openmedlab/PULSE-EVAL data/MedicineQA_RAG.jsonl (see medicineqa_pulse/PROVENANCE.md)",
    "licence": "no licence stated (all rights reserved): internal research only, never redistribute",
    "rel_threshold": 1,
}


@register("medicineqa", raw="medicineqa_pulse", description="MedicineQA-zh (PULSE-EVAL): 150 medication questions "
          "vs the (drug, attribute, text) records of their prompts", version=1)
def build_medicineqa(root: Path) -> Dataset:
    """Corpus = the medicine database (records from every prompt); qrels = each question's evidence records."""
    corpus, queries, qrels = read_medicineqa(root / MQA_FILE)
    meta = {**_MQA_META, "notes": [
        "corpus record = one (drug, attribute, text) section of a prompt document; contents = drug\\nattribute:text",
        "qrels = every evidence record of the question's prompt (5-document prompts look like top-5 lists: "
        "treat them as relevant candidates)",
        "medicine-level hit = a retrieved record's drug is a gold drug; attribute-level = a gold record"]}
    return Dataset("medicineqa", corpus, queries, qrels, meta=meta)


def _single_named(corpus: list[dict], queries: dict[str, str], qrels: Qrels):
    """(qid, question, gold medicine, the form of it the question names) of the questions naming exactly one gold
    medicine, and every database medicine name."""
    drugs = {d["id"]: d["drug"] for d in corpus}
    out = []
    for qid, question in queries.items():
        gold = sorted({drugs[r] for r in qrels[qid]})
        named = [(d, m) for d in gold if (m := mention(d, question))]
        if len(named) == 1:
            out.append((qid, question, *named[0]))
    return out, sorted(set(drugs.values()))


@register("medicineqa-multiround", raw="medicineqa_pulse", description="Derived stress test: MedicineQA questions "
          "as dialogues, medicine named earlier, asked later by pronoun (+ a variant naming a second medicine)",
          version=1)
def build_medicineqa_multiround(root: Path) -> Dataset:
    """Deterministic multi-round dialogues built from MedicineQA's single-turn questions (`make_dialogues`)."""
    corpus, queries, qrels = read_medicineqa(root / MQA_FILE)
    named, all_drugs = _single_named(corpus, queries, qrels)  # no medicine, or two, named: nothing to carry over
    convs, mq, mqrels = [], {}, {}
    for qid, question, drug, said in named:
        for conv in make_dialogues(qid, question, drug, said, all_drugs, EVAL_TEMPLATES):
            convs.append(conv)
            mq[conv["id"]] = conv["turns"][-1]["utterance"]
            mqrels[conv["id"]] = dict(qrels[qid])
    meta = {**_MQA_META, "derived": True, "notes": [
        "DERIVED stress test, not the paper's 300-dialogue MedicineQA: each single-turn question that names exactly "
        "one of its gold medicines becomes (a) 'pronoun': the medicine named in turn 1, the question asked in turn 3 "
        "with the name replaced by a pronoun, and (b) 'distractor': a second database medicine named first, the "
        "target named later, then the pronoun question; templates and distractors chosen by a hash of the qid",
        "queries.tsv holds the last user turn; conversations.jsonl the whole dialogue (role user/assistant)"]}
    return Dataset("medicineqa-multiround", corpus, mq, mqrels, conversations=convs, meta=meta)


@register("medicineqa-aside", raw="medicineqa_pulse", description="Derived stress test where recency is not the "
          "answer: the user's medicine named first, someone else's (or a stopped one) later, then the question",
          version=1)
def build_medicineqa_aside(root: Path) -> Dataset:
    """One 'aside' dialogue (`make_aside`) per MedicineQA question naming exactly one of its gold medicines."""
    corpus, queries, qrels = read_medicineqa(root / MQA_FILE)
    named, all_drugs = _single_named(corpus, queries, qrels)
    convs = [make_aside(qid, q, drug, said, all_drugs, EVAL_TEMPLATES) for qid, q, drug, said in named]
    meta = {**_MQA_META, "derived": True, "notes": [
        "DERIVED stress test where the newest medicine mention is not the answer: turn 1 names the user's own "
        "(gold) medicine, turn 3 a second database medicine that is someone else's or was stopped, turn 5 asks the "
        "question with the name replaced by a possessive phrase ('我现在吃的这个药'); templates and the second "
        "medicine chosen by a hash of the qid; the eval wording (EVAL_TEMPLATES) is disjoint from training's",
        "queries.tsv holds the last user turn; conversations.jsonl the whole dialogue (role user/assistant)"]}
    return Dataset("medicineqa-aside", corpus, {c["id"]: c["turns"][-1]["utterance"] for c in convs},
                   {c["id"]: dict(qrels[c["base_id"]]) for c in convs}, conversations=convs, meta=meta)


def read_toyhom(path: Path) -> list[dict[str, str]]:
    """Toyhom consultations (GB18030 CSV): [{"id","department","title","ask","answer"}]."""
    text = need(path).read_bytes().decode("gb18030")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != ["department", "title", "ask", "answer"]:
        raise DataFormatError(path, f"header {reader.fieldnames} != department,title,ask,answer", line=1)
    return [{"id": f"toyhom-{i}", **{k: (row[k] or "").strip() for k in reader.fieldnames}}
            for i, row in enumerate(reader)]


@register("zh-consult", raw="chinese_medical_dialogue_toyhom", description="Toyhom internal-medicine "
          "consultations: long ask -> short title (rewriting training, zh)")
def build_zh_consult(root: Path) -> Dataset:
    """Corpus = doctor answers; queries = asks; each ask a one-turn conversation whose teacher query is its title."""
    rows = [r for r in read_toyhom(root / TOYHOM_CSV) if r["ask"] and r["title"]]
    corpus = [{"id": r["id"], "contents": r["answer"], "title": r["title"]} for r in rows if r["answer"]]
    convs = [{"id": r["id"], "source": "toyhom", "turns": [{"id": "1", "role": "user", "utterance": r["ask"],
                                                            "teacher_queries": [r["title"]]}]} for r in rows]
    qrels = {r["id"]: {r["id"]: 1} for r in rows if r["answer"]}
    meta = {"source": "Toyhom/Chinese-medical-dialogue-data (MIT), see its PROVENANCE.md", "licence": "MIT",
            "rel_threshold": 1, "notes": ["teacher query of each ask = the patient's own title"]}
    return Dataset("zh-consult", corpus, {r["id"]: r["ask"] for r in rows}, qrels, conversations=convs, meta=meta)


def read_cmedqq(path: Path) -> list[tuple[int, str, str]]:
    """cMedQQ TSV rows (label, query1, query2)."""
    out = []
    with open(need(path), encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise DataFormatError(path, "expected 'label<TAB>query1<TAB>query2' with label 0/1", line=i)
            out.append((int(parts[0]), parts[1].strip(), parts[2].strip()))
    return out


@register("cmedqq", raw="chineseblue_med", description="cMedQQ train paraphrase pairs (label 1) as query -> "
          "teacher query (rewriting training, zh)")
def build_cmedqq(root: Path) -> Dataset:
    """Positive training pairs only; both directions become one-turn conversations."""
    convs = []
    for n, (label, a, b) in enumerate(read_cmedqq(root / CMEDQQ / "train.txt")):
        if label == 1 and a and b:
            for side, (src, dst) in enumerate(((a, b), (b, a))):
                convs.append({"id": f"cmedqq-{n}-{side}", "source": "cmedqq",
                              "turns": [{"id": "1", "role": "user", "utterance": src, "teacher_queries": [dst]}]})
    meta = {"source": "alibaba-research/ChineseBLUE data/cMedQQ/train.txt (Apache-2.0)", "licence": "Apache-2.0",
            "notes": ["no corpus: a training set of paraphrase rewrites"]}
    return Dataset("cmedqq", [], {}, {}, conversations=convs, meta=meta)
