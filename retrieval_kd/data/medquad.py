"""MedQuAD answers as a corpus, judged against the TREC 2017 LiveQA-Med test questions (`medquad-liveqa`)."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

from retrieval_kd.data.dataset import Dataset, Qrels
from retrieval_kd.data.files import clean, need, parse_xml
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError, DataNotFoundError

QRELS_ZIP = "QA-TestSet-LiveQA-Med-Qrels-2479-Answers.zip"
TEST_XML = "TestDataset/TREC-2017-LiveQA-Medical-Test-Questions-w-summaries.xml"
# Answer-id prefix per MedQuAD folder, spelled as the qrels zip spells it (the XML's `source` attribute says
# "MPlusHerbsSupplements" for folder 12 and is missing in a few files).
SOURCES = {
    "1_CancerGov_QA": "CancerGov", "2_GARD_QA": "GARD", "3_GHR_QA": "GHR",
    "4_MPlus_Health_Topics_QA": "MPlusHealthTopics", "5_NIDDK_QA": "NIDDK", "6_NINDS_QA": "NINDS",
    "7_SeniorHealth_QA": "NIHSeniorHealth", "8_NHLBI_QA_XML": "NHLBI", "9_CDC_QA": "CDC",
    "10_MPlus_ADAM_QA": "ADAM", "11_MPlusDrugs_QA": "MPlusDrugs", "12_MPlusHerbsSupplements_QA": "MPlusHerbsSuppls",
}
_CSV_TEXT = re.compile(r"^Question:(.*?)\nURL:(.*?)\nAnswer:(.*)$", re.S)


def answer_id(source: str, doc: str, pid: str) -> str:
    """MedQuAD answer id as the qrels zip spells it, e.g. `GHR_0000804_Sec2.txt`."""
    return f"{source}_{doc}_Sec{pid}.txt"


def _child(el, name: str):
    return next((c for c in el if c.tag.lower() == name), None)


def read_medquad_xml(path: Path, source: str) -> list[dict[str, str]]:
    """Answered QA pairs of one MedQuAD XML file; doc id = file stem (some files repeat their parent's id)."""
    out = []
    for pair in parse_xml(path).iter():
        if pair.tag.lower() not in ("qapair", "pair"):  # 4 NINDS files use a lower-case <doc>/<pair> schema
            continue
        q, a = _child(pair, "question"), _child(pair, "answer")
        answer = clean("".join(a.itertext())) if a is not None else ""
        if not answer:
            continue
        pid = pair.get("pid")
        if not pid:
            raise DataFormatError(path, "QAPair without pid", field="pid")
        question = clean("".join(q.itertext())) if q is not None else ""
        out.append({"id": answer_id(source, path.stem, pid), "contents": f"{question}\n{answer}".strip(),
                    "title": question, "source": source})
    return out


def read_medquad(folder: Path) -> list[dict[str, str]]:
    """Every answered QA pair of the MedQuAD tree, in folder/file/pair order."""
    docs: list[dict[str, str]] = []
    subdirs = sorted((p for p in need(folder).iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))
    for sub in subdirs:
        source = SOURCES.get(sub.name, sub.name.split("_", 1)[-1])
        for f in sorted(sub.glob("*.xml")):
            docs.extend(read_medquad_xml(f, source))
    return docs


def read_judged_zip(path: Path) -> tuple[list[tuple[str, int, str]], dict[str, dict[str, str]]]:
    """(qid, grade 1-4, answer id) qrels lines and {answer id: {"question", "answer"}} from the CSV, read in place."""
    with zipfile.ZipFile(need(path)) as z:
        names = [n for n in z.namelist() if not n.startswith("__MACOSX") and not n.endswith("/")]
        qname = next((n for n in names if n.endswith(".txt") and "qrels" in n), None)
        cname = next((n for n in names if n.endswith(".csv")), None)
        if not qname or not cname:
            raise DataFormatError(path, "zip needs a *qrels*.txt and a .csv member")
        judged = []
        for i, line in enumerate(z.read(qname).decode("utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            m = re.fullmatch(r"([1-4])-\w+", parts[1]) if len(parts) == 3 else None
            if not m or not parts[0].isdigit():
                raise DataFormatError(f"{path}:{qname}", f"bad qrels line {line!r}: expected "
                                      "'<question> <1-4>-<Label> <answer id>'", line=i)
            judged.append((parts[0], int(m.group(1)), parts[2]))
        texts: dict[str, dict[str, str]] = {}
        with z.open(cname) as fh:
            reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
            header = next(reader, None)
            if header != ["AnswerID", "Answer"]:
                raise DataFormatError(f"{path}:{cname}", f"header {header} != ['AnswerID', 'Answer']", line=1)
            for row in reader:
                m = _CSV_TEXT.match(row[1]) if len(row) == 2 else None
                if not m:
                    raise DataFormatError(f"{path}:{cname}", "row is not 'AnswerID,\"Question: ..URL: ..Answer: ..\"'",
                                          line=reader.line_num)
                texts[row[0]] = {"question": clean(m.group(1)), "answer": clean(m.group(3))}
    return judged, texts


def read_liveqa_test(path: Path) -> dict[str, dict[str, str]]:
    """LiveQA-Med 2017 test questions: qid -> {"question", "summary", "paraphrase"}."""
    out = {}
    for q in parse_xml(path).iter("NLM-QUESTION"):
        qid = q.get("qid", "")
        subject, message = clean(q.findtext("Original-Question/SUBJECT") or ""), \
            clean(q.findtext("Original-Question/MESSAGE") or "")
        if not qid or not (subject or message):
            raise DataFormatError(path, f"NLM-QUESTION {qid!r} without qid or question text")
        sep = " " if subject.endswith((".", "?", "!", ":")) else ". "
        out[qid] = {"question": f"{subject}{sep}{message}" if subject and message else subject or message,
                    "summary": clean(q.findtext("NLM-Summary") or ""),
                    "paraphrase": clean(q.findtext("NIST-PARAPHRASE") or "")}
    return out


@register("medquad-liveqa", raw="medquad", description="MedQuAD answers (+ judged CSV answers) vs 104 LiveQA-Med "
          "2017 test questions, graded 0-3")
def build_medquad_liveqa(root: Path) -> Dataset:
    """Corpus = answered MedQuAD pairs + judged answers only in the qrels CSV; queries = LiveQA-Med test."""
    live = root / "liveqa_med_2017"
    if not live.is_dir():
        raise DataNotFoundError(f"medquad-liveqa needs {live} for its queries; set RKD_DATA")
    corpus = read_medquad(root / "medquad")
    zpath = root / "medquad" / QRELS_ZIP
    judged, texts = read_judged_zip(zpath)
    seen = {d["id"] for d in corpus}
    n_xml = len(corpus)
    for aid, t in texts.items():
        if aid not in seen:
            seen.add(aid)
            corpus.append({"id": aid, "contents": f"{t['question']}\n{t['answer']}", "title": t["question"],
                           "source": aid.split("_", 1)[0]})
    test = read_liveqa_test(need(live / TEST_XML))
    qrels: Qrels = {}
    twice = 0
    for qn, grade, aid in judged:
        qid = f"TQ{qn}"
        if qid not in test:
            raise DataFormatError(zpath, f"qrels question {qn} is not a LiveQA test question ({qid})")
        if aid not in seen:
            raise DataFormatError(zpath, f"judged answer {aid} is neither in MedQuAD's XML nor in the CSV")
        prev = qrels.setdefault(qid, {}).get(aid)
        twice += prev is not None and prev != grade - 1
        qrels[qid][aid] = max(grade - 1, prev if prev is not None else -1)
    n_rel = sum(any(g >= 2 for g in docs.values()) for docs in qrels.values())
    meta = {
        "source": "MedQuAD (abachaa/MedQuAD, CC BY 4.0) + its LiveQA-Med judged-answer zip; queries from "
        "abachaa/LiveQA_MedicalTask_TREC2017 TestDataset; see medquad/ and liveqa_med_2017/ PROVENANCE.md",
        "licence": "MedQuAD: CC BY 4.0 (Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019); LiveQA-Med test "
        "questions: research use, cite Ben Abacha et al., TREC 2017",
        "rel_threshold": 2,
        "grades": {"0": "1-Incorrect", "1": "2-Related", "2": "3-Incomplete", "3": "4-Excellent"},
        "alt_queries": {k: {q: v[k] for q, v in test.items() if v[k]} for k in ("summary", "paraphrase")},
        "questions_with_relevant_answer": n_rel,
        "notes": [
            "query text = SUBJECT + '. ' + MESSAGE of the original question (no '.' added after final "
            "punctuation); meta alt_queries holds the NLM summaries ('summary') and NIST paraphrases "
            "('paraphrase') under the same qids",
            "qrels question n is test question TQn; stored grade = LiveQA grade - 1 (nDCG gain = grade - 1), "
            "rel_threshold 2 = original grade >= 3",
            f"{twice} (question, answer) pairs judged twice with different grades keep the higher; "
            f"{n_rel} of {len(qrels)} judged questions have a relevant answer",
            f"corpus: {n_xml} answered MedQuAD XML pairs (id = <source>_<file stem>_Sec<pid>.txt, as the qrels "
            f"spell it) + {len(corpus) - n_xml} judged answers present only in the zip's CSV",
            "contents = question + answer; the CSV's URL line is dropped",
        ],
    }
    queries = {q: v["question"] for q, v in test.items()}
    return Dataset("medquad-liveqa", corpus, queries, qrels, meta=meta)
