"""TREC topic files -> {qid: text}: XML (`<topic number="201"><query>…</query>`), classic SGML
(`<top> <num> Number: 051 <title> Topic: … <desc> Description: …</top>`) and TSV (`qid<TAB>text`).

`field` picks the text: "title" (the XML `<query>`, else `<title>`), "desc" or "narr". SGML numbers lose their
leading zeros (`051` -> `51`, as the TREC qrels write them). Each error names file and line.
"""
from __future__ import annotations

import re
from pathlib import Path

from retrieval_kd.data.files import clean, numbered_lines, parse_xml, sgml_blocks
from retrieval_kd.errors import ConfigError, DataFormatError

FIELDS = ("title", "desc", "narr")
_XML_NAMES = {"title": ("query", "title"), "desc": ("description", "desc"), "narr": ("narrative", "narr")}
_SGML_TAG = re.compile(r"<(num|title|desc|narr|dom|smry|con|def|fac|nat)>", re.I)
_PREFIX = {"num": "number:", "title": "topic:", "desc": "description:", "narr": "narrative:"}


def sniff(path: Path) -> str:
    """'xml', 'sgml' or 'tsv': the kind of topic file, from its first non-blank line."""
    for _, line in numbered_lines(path):
        s = line.strip().lower()
        if not s:
            continue
        if s.startswith("<top>"):
            return "sgml"
        return "xml" if s.startswith(("<?xml", "<topics", "<topic", "<!doctype", "<webtrack")) else "tsv"
    raise DataFormatError(path, "no topics (empty file)")


def read_topics(path: str | Path, field: str = "title") -> dict[str, str]:
    """Topics of an XML, SGML or TSV topic file (told apart by `sniff`); an empty file or text is an error."""
    path = Path(path)
    if field not in FIELDS:
        raise ConfigError(f"unknown topic field {field!r}; known: {', '.join(FIELDS)}")
    kind = sniff(path)
    topics = {"xml": read_xml_topics, "sgml": read_sgml_topics, "tsv": read_tsv_topics}[kind](path, field)
    if not topics:
        raise DataFormatError(path, "no topics found")
    return topics


def _add(path: Path, topics: dict[str, str], qid: str, text: str, line: int, field: str) -> None:
    if not qid or any(c.isspace() for c in qid):
        raise DataFormatError(path, f"topic id {qid!r} is empty or contains whitespace", line=line, field="number")
    if not text:
        raise DataFormatError(path, f"topic {qid} has no {field} text", line=line, field=field)
    if qid in topics:
        raise DataFormatError(path, f"topic {qid} appears twice", line=line, field="number")
    topics[qid] = text


def read_tsv_topics(path: Path, field: str = "title") -> dict[str, str]:
    """`qid<TAB>text` lines (the field is the text column; a header `qid text` / `id text` is skipped)."""
    topics: dict[str, str] = {}
    for i, line in numbered_lines(path):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep:
            raise DataFormatError(path, "expected '<qid>\\t<text>'", line=i)
        if not topics and qid.strip().lower() in ("qid", "id", "_id", "query_id", "query-id", "topic"):
            continue
        _add(path, topics, qid.strip(), clean(text), i, "text")
    return topics


def read_xml_topics(path: Path, field: str = "title") -> dict[str, str]:
    """`<topics><topic number="N">` with `<query>` (or `<title>`), `<description>`, `<narrative>` children."""
    root = parse_xml(path)
    text = path.read_text(encoding="utf-8")
    lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"<topic\b", text)]
    elems = [root] if root.tag == "topic" else list(root.iter("topic"))
    if not elems:
        raise DataFormatError(path, f"no <topic> element under <{root.tag}>")
    topics: dict[str, str] = {}
    for k, el in enumerate(elems):
        line = lines[k] if k < len(lines) else None
        qid = (el.get("number") or el.get("id") or el.findtext("number") or "").strip()
        body = next((el.findtext(n) for n in _XML_NAMES[field] if el.find(n) is not None), None)
        if body is None:
            raise DataFormatError(path, f"topic {qid or '?'} has no <{_XML_NAMES[field][0]}>", line=line,
                                  field=_XML_NAMES[field][0])
        _add(path, topics, qid, clean(body), line, field)
    return topics


def read_sgml_topics(path: Path, field: str = "title") -> dict[str, str]:
    """Classic TREC topics: `<top>` blocks whose `<num>`, `<title>`, `<desc>`, `<narr>` run to the next tag."""
    topics: dict[str, str] = {}
    for start, block in sgml_blocks(path, "top", "not a TREC topics file?"):
        qid, text = _sgml_topic(path, start, block, field)
        _add(path, topics, qid, text, start, field)
    return topics


def _sgml_topic(path: Path, line: int, block: str, field: str) -> tuple[str, str]:
    parts: dict[str, str] = {}
    pieces = _SGML_TAG.split(block)
    for tag, body in zip(pieces[1::2], pieces[2::2]):
        tag = tag.lower()
        body = clean(re.sub(r"</\w+>", " ", body))
        if body.lower().startswith(_PREFIX.get(tag, "\0")):
            body = body[len(_PREFIX[tag]):].strip()
        if tag in parts:
            raise DataFormatError(path, f"two <{tag}> in one topic (a missing </top>?)", line=line, field=tag)
        parts[tag] = body
    if not parts.get("num"):
        raise DataFormatError(path, "topic without <num>", line=line, field="num")
    qid = parts["num"].split()[0]
    if qid.isdigit():
        qid = str(int(qid))
    if field not in parts:
        raise DataFormatError(path, f"topic {qid} has no <{field}>", line=line, field=field)
    return qid, parts[field]
