"""Classic test collections: SMART `.I/.T/.W` (MED, CISI, Cranfield), CACM (HTML tarball) and Cystic Fibrosis XML."""
from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path

from retrieval_kd.data.dataset import Dataset, Qrels
from retrieval_kd.data.files import clean, need, parse_xml, read_lines
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError, DataNotFoundError

_TAG = re.compile(r"^\.([A-Z])(?:\s+(.*?))?\s*$")
_CACM_DATE = re.compile(
    r"^\s*(?:CACM\s+)?(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r",?\s*\d{4}\s*$",
    re.IGNORECASE,
)








# ---------------------------------------------------------------- SMART `.I/.T/.A/.B/.W/.X`


def read_smart(path: Path, keep: Iterable[str] = ("T", "W")) -> list[dict[str, str]]:
    """Records of a SMART tagged file as {"I": id, field: text} for the fields in `keep`.

    A field repeated inside one record is appended to the first; once `.W` has started, a repeated
    skipped field (a stray `.A`/`.B` marker inside an abstract, Cranfield 240) is read as abstract text.
    """
    keep = set(keep)
    records: list[dict[str, str]] = []
    ids: set[str] = set()
    rec: dict[str, list[str]] | None = None
    field: str | None = None
    seen: set[str] = set()

    def close() -> None:
        if rec is not None:
            records.append({k: "\n".join(v) for k, v in rec.items()})

    for i, line in read_lines(path, encoding="latin-1"):
        m = _TAG.match(line)
        if m and m.group(1) == "I":
            close()
            rid = (m.group(2) or "").strip()
            if not rid.isdigit():
                raise DataFormatError(path, f"'.I' needs a numeric record id, got {rid!r}", line=i, field=".I")
            rid = str(int(rid))
            if rid in ids:
                raise DataFormatError(path, f"duplicate record id {rid}", line=i, field=".I")
            ids.add(rid)
            rec, field, seen = {"I": [rid]}, None, set()
        elif m and m.group(2) is None:
            tag = m.group(1)
            if rec is None:
                raise DataFormatError(path, f"field '.{tag}' before any '.I' line (record without .I)", line=i)
            if tag not in keep and tag in seen and "W" in seen:
                field = "W"  # stray marker inside the abstract: keep reading it as abstract text
                continue
            seen.add(tag)
            field = tag if tag in keep else None
            if field is not None:
                rec.setdefault(field, [])
        elif rec is None:
            if line.strip():
                raise DataFormatError(path, "text before the first '.I' line (record without .I)", line=i)
        elif field is not None:
            rec[field].append(line)
    close()
    return records


def smart_docs(path: Path, strip_title: bool = False) -> list[dict[str, str]]:
    """Corpus records from a SMART file: contents = title + abstract."""
    docs = []
    for r in read_smart(path):
        title, body = clean(r.get("T", "")), clean(r.get("W", ""))
        if strip_title and title and body.startswith(title):
            body = body[len(title):].strip()
        doc = {"id": r["I"], "contents": "\n".join(p for p in (title, body) if p)}
        if title:
            doc["title"] = title
        docs.append(doc)
    return docs


def read_pairs_qrels(path: Path, columns: int, min_cols: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """Whitespace-separated qrels lines, checked for column count and integer ids."""
    min_cols = min_cols or columns
    for i, line in read_lines(path):
        parts = line.split()
        if not parts:
            continue
        if not (min_cols <= len(parts) <= columns) or not all(p.lstrip("-").isdigit() for p in parts[:2]):
            want = f"{columns}" if min_cols == columns else f"at least {min_cols}"
            raise DataFormatError(path, f"bad qrels line {line.strip()!r}: expected {want} columns, "
                                  "numeric query and doc ids", line=i)
        yield i, parts


def check_qrels(qrels: Qrels, doc_ids: set[str], path: Path) -> None:
    """Every judged document must exist in the corpus."""
    for q, docs in qrels.items():
        missing = sorted(set(docs) - doc_ids)
        if missing:
            raise DataFormatError(path, f"query {q} judges unknown documents {missing[:5]}")


# ---------------------------------------------------------------- MED, CISI, Cranfield

MED_PHRASE = " to be or not to be. to be or not to be."


def build_med(root: Path) -> Dataset:
    """MED (Medline 1033): SMART docs, one-line queries, one-line-per-query binary qrels."""
    d = root / "med"
    corpus = smart_docs(d / "MED.ALL")
    first = corpus[0]
    if first["id"] == "1" and MED_PHRASE in first["contents"]:
        first["contents"] = first["contents"].replace(MED_PHRASE, "", 1)
    queries = {}
    for i, line in read_lines(d / "medline.query"):
        qid, _, text = line.strip().partition(" ")
        if not qid.isdigit() or not text.strip():
            raise DataFormatError(d / "medline.query", "expected '<qid> <query text>'", line=i)
        queries[qid] = clean(text)
    qrels: Qrels = {}
    for _, parts in read_pairs_qrels(d / "medline.rel", columns=10_000, min_cols=2):
        qrels.setdefault(parts[0], {}).update({doc: 1 for doc in parts[1:]})
    check_qrels(qrels, {x["id"] for x in corpus}, d / "medline.rel")
    meta = {
        "source": "Glasgow MEDLINE collection (MED.ALL via adaxu91/lucene-searching; MED.QRY/REL reformatted "
        "by Jenish201/Medline-IR-System), see med/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"1": "relevant"},
        "notes": [f"document 1: removed the inserted test phrase {MED_PHRASE.strip()!r}"],
    }
    return Dataset("med", corpus, queries, qrels, meta=meta)


def build_cisi(root: Path) -> Dataset:
    """CISI: SMART docs and queries (title + text), binary qrels `qid docid 0 0.0`."""
    d = root / "cisi"
    corpus = smart_docs(d / "CISI.ALL")
    queries = {r["I"]: clean(f"{r.get('T', '')} {r.get('W', '')}") for r in read_smart(d / "CISI.QRY")}
    qrels: Qrels = {}
    for _, parts in read_pairs_qrels(d / "CISI.REL", columns=4):
        qrels.setdefault(parts[0], {})[parts[1]] = 1
    check_qrels(qrels, {x["id"] for x in corpus}, d / "CISI.REL")
    meta = {
        "source": "Glasgow CISI collection via Shakiba-Alipour/Information-Retrieval-on-CISI, see cisi/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"1": "relevant"},
        "notes": [
            f"{len(queries) - len(qrels)} of {len(queries)} queries have no judgements; kept as queries",
            "contents = .T + .W; .A authors, .B, .K, .C and .X citations dropped; query text = .T + .W",
        ],
    }
    return Dataset("cisi", corpus, queries, qrels, meta=meta)


CRANFIELD_GRADES = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}


def build_cranfield(root: Path) -> Dataset:
    """Cranfield 1400: query ids renumbered by position, Cleverdon codes inverted into grades."""
    d = root / "cranfield"
    corpus = smart_docs(d / "cran.all.1400", strip_title=True)
    raw = read_smart(d / "cran.qry", keep=("W",))
    queries = {str(pos): clean(r.get("W", "")) for pos, r in enumerate(raw, 1)}
    qrels: Qrels = {}
    path = d / "cranqrel"
    for i, parts in read_pairs_qrels(path, columns=3):
        code = int(parts[2])
        if code not in CRANFIELD_GRADES:
            raise DataFormatError(path, f"relevance code {code} not in 1..4 or -1", line=i, field="code")
        if parts[0] not in queries:
            raise DataFormatError(path, f"query {parts[0]} beyond the {len(queries)} queries of cran.qry", line=i)
        qrels.setdefault(parts[0], {})[parts[1]] = CRANFIELD_GRADES[code]
    check_qrels(qrels, {x["id"] for x in corpus}, path)
    empty = [x["id"] for x in corpus if not x["contents"]]
    meta = {
        "source": "Glasgow Cranfield 1400 via Chetan-Prasad/IR-Lucene_Cran, see cranfield/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"4": "code 1, complete answer", "3": "code 2, high relevance", "2": "code 3, useful",
                   "1": "code 4, minimum interest", "0": "code -1, of no interest (judged not relevant)"},
        "query_id_map": {str(pos): r["I"] for pos, r in enumerate(raw, 1)},
        "notes": [
            "query ids renumbered 1..225 by position in cran.qry, as cranqrel numbers them "
            "(original .I numbers in meta query_id_map)",
            "Cleverdon codes inverted into graded relevance: 1->4, 2->3, 3->2, 4->1, -1->0; "
            "rel_threshold 1 counts codes 1-4 as relevant",
            "the title repeated at the start of .W is dropped from the abstract",
            "repeated .W fields (docs 576, 578) are concatenated; stray .A/.B markers inside doc 240's "
            "abstract are read as abstract text",
            f"documents with no text kept with empty contents: {empty}",
        ],
    }
    return Dataset("cranfield", corpus, queries, qrels, meta=meta)


# ---------------------------------------------------------------- CACM


def cacm_doc(path: str, text: str) -> dict[str, str]:
    """Title + abstract of one CACM `<pre>` document; the date line and everything after it is dropped."""
    m = re.search(r"<pre>(.*?)</pre>", text, re.S)
    if not m:
        raise DataFormatError(path, "no <pre>...</pre> block")
    lines = m.group(1).splitlines()
    end = next((i for i, line in enumerate(lines) if _CACM_DATE.match(line)), None)
    if end is None:
        raise DataFormatError(path, "no 'CACM <Month>, <year>' date line ending title and abstract")
    paras = [clean(p) for p in "\n".join(lines[:end]).split("\n\n") if p.strip()]
    if not paras:
        raise DataFormatError(path, "empty title")
    title, abstract = paras[0], " ".join(paras[1:])
    return {"contents": f"{title}\n{abstract}" if abstract else title, "title": title}


def read_cacm_docs(tar_path: Path) -> list[dict[str, str]]:
    """All documents of cacm.tar.gz, id = file stem (`CACM-0001`), in id order."""
    docs = []
    with tarfile.open(need(tar_path), "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".html"):
                continue
            where = f"{tar_path}:{member.name}"
            text = tar.extractfile(member).read().decode("latin-1")
            docs.append({"id": Path(member.name).stem, **cacm_doc(where, text)})
    return sorted(docs, key=lambda x: x["id"])


def read_trec_topics(path: Path) -> dict[str, str]:
    """TREC SGML `<DOC><DOCNO> n </DOCNO> text </DOC>` topics (CACM style)."""
    text = need(path).read_text(encoding="latin-1")
    topics = {}
    for m in re.finditer(r"<DOC>(.*?)(?:</DOC>|\Z)", text, re.S):
        line = text.count("\n", 0, m.start()) + 1
        if not m.group(0).endswith("</DOC>"):
            raise DataFormatError(path, "topic not closed by </DOC>", line=line)
        n = re.search(r"<DOCNO>\s*(\S+)\s*</DOCNO>(.*)", m.group(1), re.S)
        if not n:
            raise DataFormatError(path, "topic without <DOCNO>", line=line)
        topics[n.group(1)] = clean(n.group(2))
    return topics


def build_cacm(root: Path) -> Dataset:
    """CACM: HTML `<pre>` docs (title + abstract), TREC topics, TREC qrels."""
    d = root / "cacm"
    corpus = read_cacm_docs(d / "cacm.tar.gz")
    queries = read_trec_topics(d / "topics.cacm.txt")
    qrels: Qrels = {}
    unpadded = 0
    path = d / "qrels.cacm.txt"
    for i, line in read_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise DataFormatError(path, f"bad qrels line {line.strip()!r}: expected 'qid Q0 docid grade'", line=i)
        m = re.fullmatch(r"CACM-(\d+)", parts[2])
        if not m:
            raise DataFormatError(path, f"doc id {parts[2]!r} is not CACM-<number>", line=i, field="docid")
        unpadded += len(m.group(1)) < 4
        qrels.setdefault(parts[0], {})[f"CACM-{int(m.group(1)):04d}"] = int(parts[3])
    check_qrels(qrels, {x["id"] for x in corpus}, path)
    meta = {
        "source": "Glasgow/SMART CACM via castorini/anserini (cacm.tar.gz) and castorini/anserini-tools "
        "(topics, qrels), see cacm/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"1": "relevant"},
        "notes": [
            "contents = title + abstract; the date, author, keyword, CR-category, CA and citation lines dropped",
            f"{len(queries) - len(qrels)} of {len(queries)} topics have no judgements; kept as queries",
            f"doc ids = file stems (CACM-0046); {unpadded} qrels lines spelling ids below 1000 without zero "
            "padding (CACM-46) mapped to that form",
        ],
    }
    return Dataset("cacm", corpus, queries, qrels, meta=meta)


# ---------------------------------------------------------------- Cystic Fibrosis




def _text(el: ET.Element | None) -> str:
    return clean("".join(el.itertext())) if el is not None else ""


def _is_score(score: str) -> bool:
    return len(score) == 4 and all(c in "012" for c in score)


def read_cf_queries(path: Path) -> tuple[dict[str, str], Qrels, list[str]]:
    """Queries and graded qrels of cfquery.xml, with notes on the repairs made.

    A query header swallowed into the previous query's records (an Item with score = the lost query's
    <Results> and text = its number, followed by its items) ends that query's records; the lost query's
    items are dropped, since its text is gone.
    """
    raw = need(path).read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    repairs: list[str] = []
    for q in parse_xml(path).iter("QUERY"):
        qid = str(int(_text(q.find("QueryNumber"))))
        queries[qid] = _text(q.find("QueryText"))
        items = q.findall(".//Item")
        declared = int(_text(q.find("Results")) or len(items))
        if len(items) > declared and not _is_score(items[declared].get("score", "")):
            head = items[declared]
            lost, n_lost = _text(head), int(head.get("score", "0") or 0)
            if len(items) - declared - 1 != n_lost:
                raise DataFormatError(path, f"query {qid}: {len(items)} items, <Results> says {declared}",
                                      line=_line_of(raw, f'score="{head.get("score")}"'))
            repairs.append(
                f"query {qid} holds {len(items)} items: its {declared} own, then the header of query "
                f"{int(lost)} (Item score={head.get('score')!r}) and that query's {n_lost} items; "
                f"kept the first {declared}, dropped query {int(lost)}'s items (its text is missing)"
            )
            items = items[:declared]
        for item in items:
            score = item.get("score", "")
            if not _is_score(score):
                raise DataFormatError(path, f"query {qid}: Item score {score!r} is not four 0-2 digits",
                                      line=_line_of(raw, f'score="{score}"'), field="score")
            qrels.setdefault(qid, {})[str(int(_text(item)))] = sum(int(c) for c in score)
    return queries, qrels, repairs


def _line_of(text: str, needle: str) -> int | None:
    i = text.find(needle)
    return text.count("\n", 0, i) + 1 if i >= 0 else None


def build_cf(root: Path) -> Dataset:
    """Cystic Fibrosis: records (title + abstract/extract), graded qrels = sum of the 4 assessors' scores."""
    d = root / "cystic_fibrosis"
    files = sorted((d / "data").glob("cf7*.xml"))
    if not files:
        raise DataNotFoundError(f"{d / 'data'}: no cf7*.xml files")
    corpus = []
    for f in files:
        for rec in parse_xml(f).iter("RECORD"):
            num = _text(rec.find("RECORDNUM"))
            if not num.isdigit():
                raise DataFormatError(f, f"RECORD with bad RECORDNUM {num!r}", field="RECORDNUM")
            title = _text(rec.find("TITLE"))
            body = _text(rec.find("ABSTRACT")) or _text(rec.find("EXTRACT"))
            corpus.append({"id": str(int(num)), "contents": "\n".join(p for p in (title, body) if p),
                           "title": title})
    qpath = d / "cfquery.xml"
    queries, qrels, repairs = read_cf_queries(qpath)
    check_qrels(qrels, {x["id"] for x in corpus}, qpath)
    meta = {
        "source": "Cystic Fibrosis collection (Shaw et al. 1991, XML version via AnaKlara/irCystic), "
        "see cystic_fibrosis/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"0..8": "sum of four assessors' scores (each 0 not, 1 marginally, 2 highly relevant)"},
        "notes": [
            "query 93 is absent from this XML copy; query ids kept as given (1..100 without 93)",
            "contents = TITLE + ABSTRACT (or EXTRACT); authors, MeSH topics, references and citations dropped",
            "DOCTYPE (a Windows path) blanked before parsing; items whose four scores sum to 0 kept as grade 0",
            *repairs,
        ],
    }
    return Dataset("cf", corpus, queries, qrels, meta=meta)


register("cacm", raw="cacm", description="CACM abstracts (3,204 docs, 64 queries, binary qrels)")(build_cacm)
register("med", raw="med", description="MEDLINE abstracts (1,033 docs, 30 queries, binary qrels)")(build_med)
register("cisi", raw="cisi", description="CISI library science (1,460 docs, 112 queries, binary qrels)")(build_cisi)
register("cranfield", raw="cranfield",
         description="Cranfield aerodynamics (1,400 docs, 225 queries, graded 0-4)")(build_cranfield)
register("cf", raw="cystic_fibrosis",
         description="Cystic Fibrosis MEDLINE (1,239 docs, 99 queries, graded 0-8)")(build_cf)
