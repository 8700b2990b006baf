"""TREC 2017 LiveQA-Med: training questions with FOCUS/TYPE annotations, test questions' annotations and summaries."""
from __future__ import annotations

from pathlib import Path

from retrieval_kd.data.dataset import Dataset, Qrels
from retrieval_kd.data.files import clean, need, parse_xml
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError

TRAIN_FILES = ("TrainingDatasets/TREC-2017-LiveQA-Medical-Train-1.xml",
               "TrainingDatasets/TREC-2017-LiveQA-Medical-Train-2.xml")
TEST_FILE = "TestDataset/TREC-2017-LiveQA-Medical-Test-Questions-w-summaries.xml"


def _dedup(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for x in items:
        if x and x.lower() not in seen:
            seen[x.lower()] = x
    return list(seen.values())


def read_liveqa_train(path: Path, prefix: str) -> list[dict]:
    """Training questions: [{"id","subject","message","focus":[...],"type":[...],"answers":[(id, text)]}]."""
    out = []
    for n, q in enumerate(parse_xml(path).iter("NLM-QUESTION")):
        raw_id = q.get("questionid") or q.get("qid") or str(n)
        qid = f"{prefix}-{raw_id.removesuffix('.0')}"
        subject, message = clean(q.findtext("SUBJECT") or ""), clean(q.findtext("MESSAGE") or "")
        if not (subject or message):
            raise DataFormatError(path, f"NLM-QUESTION {raw_id!r} has neither SUBJECT nor MESSAGE")
        focus = _dedup([clean(f.text or "") for f in q.iter("FOCUS")])
        types = _dedup([clean(t.text or "").lower() for t in q.iter("TYPE")])
        answers = [(a.get("answerid") or f"{qid}-A{k + 1}", clean("".join(a.itertext())))
                   for k, a in enumerate(q.iter("ANSWER"))]
        out.append({"id": qid, "subject": subject, "message": message, "focus": focus, "type": types,
                    "answers": [(i, t) for i, t in answers if t]})
    return out


def read_liveqa_test_annotations(path: Path) -> dict[str, dict[str, list[str] | str]]:
    """Test questions' human annotations: qid -> {"focus": [...], "type": [...], "summary": str}."""
    out = {}
    for q in parse_xml(need(path)).iter("NLM-QUESTION"):
        qid = q.get("qid")
        if not qid:
            raise DataFormatError(path, "NLM-QUESTION without qid", field="qid")
        out[qid] = {"focus": _dedup([clean(f.text or "") for f in q.iter("FOCUS")]),
                    "type": _dedup([clean(t.text or "").lower() for t in q.iter("TYPE")]),
                    "summary": clean(q.findtext("NLM-Summary") or "")}
    return out


def question_text(subject: str, message: str) -> str:
    """SUBJECT. MESSAGE, as the medquad-liveqa queries are written."""
    return f"{subject}. {message}" if subject and message else subject or message


@register("liveqa-med-train", raw="liveqa_med_2017", description="LiveQA-Med 2017 training questions (446) with "
          "FOCUS/TYPE teacher queries and their answers (rewriting training, en)")
def build_liveqa_train(root: Path) -> Dataset:
    """Conversations = one-turn questions whose teacher queries are the annotated FOCUS strings."""
    base = root / "liveqa_med_2017"
    rows = [r for i, f in enumerate(TRAIN_FILES) for r in read_liveqa_train(need(base / f), f"T{i + 1}")]
    corpus, qrels, convs, queries = [], {}, [], {}
    for r in rows:
        text = question_text(r["subject"], r["message"])
        queries[r["id"]] = text
        for aid, answer in r["answers"]:
            corpus.append({"id": f"{r['id']}:{aid}", "contents": answer})
            qrels.setdefault(r["id"], {})[f"{r['id']}:{aid}"] = 1
        convs.append({"id": r["id"], "source": "liveqa-train", "turns": [{
            "id": "1", "role": "user", "utterance": text, "focus": r["focus"], "type": r["type"],
            "teacher_queries": r["focus"]}]})
    q: Qrels = qrels
    meta = {"source": "abachaa/LiveQA_MedicalTask_TREC2017 TrainingDatasets (commit 74d3612, see PROVENANCE.md)",
            "licence": "research use (NLM/TREC), cite Ben Abacha et al. TREC 2017", "rel_threshold": 1,
            "notes": ["query = SUBJECT. MESSAGE; teacher_queries = the FOCUS annotations; 'type' keeps TYPE "
                      "(lower-cased); corpus = the reference answers (ids <qid>:<answer id>)",
                      "never contains LiveQA test questions"]}
    return Dataset("liveqa-med-train", corpus, queries, q, conversations=convs, meta=meta)
