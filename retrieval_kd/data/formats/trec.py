"""TREC files: qrels (`qid iter docid grade`, or BEIR's three-column TSV), run files (`qid Q0 docid rank score tag`)
and SGML document collections (`<DOC><DOCNO>…</DOCNO>…</DOC>`).

Every reader names file and line on a malformed row and refuses an empty file: an empty qrels or run file would
otherwise evaluate as zero without a word.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from retrieval_kd.data.files import clean, numbered_lines, sgml_blocks
from retrieval_kd.errors import DataFormatError
from retrieval_kd.utils import atomic_file

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]
BEIR_QRELS_HEADER = ("query-id", "corpus-id", "score")


def _grade(path: Path, line: int, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(path, f"relevance grade {text!r} is not a number", line=line, field="grade") from None
    if value != int(value):
        raise DataFormatError(path, f"relevance grade {text!r} is not a whole number", line=line, field="grade")
    return int(value)


def read_trec_qrels_lines(lines: Iterable[tuple[Path, int, str]]) -> Qrels:
    """Parse `qid iter docid grade` lines, naming file and line on error."""
    qrels: Qrels = {}
    for p, i, line in lines:
        parts = line.split()
        if len(parts) != 4:
            raise DataFormatError(p, f"qrels line needs 4 columns (qid iter docid grade), got {len(parts)}", line=i)
        qrels.setdefault(parts[0], {})[parts[2]] = _grade(p, i, parts[3])
    return qrels


def read_qrels(path: str | Path) -> Qrels:
    """A qrels file: TREC (`qid iter docid grade`) or BEIR TSV (`query-id corpus-id score`, header optional),
    told apart by the column count of the first row; a judgement given twice with two grades is an error."""
    path = Path(path)
    qrels: Qrels = {}
    first: int | None = None
    for i, line in numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if first is None:
            first = len(parts)
            if first == 3 and not _is_number(parts[2]):  # a header such as query-id corpus-id score
                continue
            if first not in (3, 4):
                raise DataFormatError(path, f"qrels line needs 4 columns (qid iter docid grade) or 3 tab-separated "
                                      f"(query-id corpus-id score), got {first}", line=i)
        if len(parts) != first:
            raise DataFormatError(path, f"{len(parts)} columns where the first row has {first}", line=i)
        qid, doc, grade = (parts[0], parts[1], parts[2]) if first == 3 else (parts[0], parts[2], parts[3])
        g = _grade(path, i, grade)
        if qrels.setdefault(qid, {}).setdefault(doc, g) != g:
            raise DataFormatError(path, f"query {qid} judges document {doc} twice, with grades "
                                  f"{qrels[qid][doc]} and {g}", line=i, field="grade")
    if not qrels:
        raise DataFormatError(path, "no judgements (empty qrels file)")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_run(path: str | Path) -> Run:
    """Read a TREC run file, naming file and line on a malformed row; an empty run or a document listed twice
    for one query is an error."""
    run: Run = {}
    path = Path(path)
    for i, line in numbered_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise DataFormatError(path, f"run line needs 6 columns (qid Q0 docid rank score tag), got {len(parts)}",
                                  line=i)
        try:
            int(parts[3])
        except ValueError:
            raise DataFormatError(path, f"rank {parts[3]!r} is not a whole number", line=i, field="rank") from None
        try:
            score = float(parts[4])
        except ValueError:
            raise DataFormatError(path, f"score {parts[4]!r} is not a number", line=i, field="score") from None
        docs = run.setdefault(parts[0], {})
        if parts[2] in docs:
            raise DataFormatError(path, f"document {parts[2]} listed twice for query {parts[0]}", line=i,
                                  field="docid")
        docs[parts[2]] = score
    if not run:
        raise DataFormatError(path, "no ranked documents (empty run file)")
    return run


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "rkd") -> Path:
    """Write a TREC run file (qid Q0 docid rank score tag), ranks by descending score, atomically."""
    path = Path(path)
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (doc, score) in enumerate(ranked, 1):
                fh.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")
    return path


_TAG = re.compile(r"<(/?)([A-Za-z][\w.-]*)[^>]*>")
TITLE_TAGS = ("TITLE", "HEADLINE", "HEAD", "HL", "H3")


def read_trec_docs(path: str | Path) -> list[dict[str, Any]]:
    """Documents of a TREC SGML file: id = DOCNO; title = the first TITLE/HEADLINE/HEAD/HL element; contents =
    title + the text of the TEXT elements (or, without any, of everything but DOCNO), tags removed."""
    path = Path(path)
    docs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for start, body in sgml_blocks(path, "DOC", "not a TREC SGML document file?"):
        doc = _sgml_doc(path, start, body)
        if doc["id"] in seen:
            raise DataFormatError(path, f"DOCNO {doc['id']} already used on line {seen[doc['id']]}", line=start,
                                  field="DOCNO")
        seen[doc["id"]] = start
        docs.append(doc)
    if not docs:
        raise DataFormatError(path, "no <DOC> found (empty document file)")
    return docs


def _element(text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", text, flags=re.S | re.I)


def _sgml_doc(path: Path, line: int, text: str) -> dict[str, Any]:
    docno = _element(text, "DOCNO")
    if len(docno) != 1 or not docno[0].strip():
        raise DataFormatError(path, f"document needs exactly one non-empty <DOCNO>, has {len(docno)}", line=line,
                              field="DOCNO")
    doc_id = docno[0].strip()
    if any(c.isspace() for c in doc_id):
        raise DataFormatError(path, f"DOCNO {doc_id!r} contains whitespace", line=line, field="DOCNO")
    title = next((t for tag in TITLE_TAGS for t in _element(text, tag) if t.strip()), "")
    title = clean(html.unescape(_TAG.sub(" ", title)))
    parts = _element(text, "TEXT") or [re.sub(r"<DOCNO>.*?</DOCNO>", " ", text, flags=re.S | re.I)]
    body = clean(html.unescape(_TAG.sub(" ", " ".join(parts))))
    doc: dict[str, Any] = {"id": doc_id, "contents": "\n".join(p for p in (title, body) if p)}
    if title:
        doc["title"] = title
    return doc
