"""SciFact (CSV-in-zip export of allenai/scifact) read from scifact.zip without unpacking, matching BEIR scifact.

Corpus: the 5,183 abstracts of `corpus_train.csv`; contents = title + "\\n" + the abstract's sentences (a numpy
array repr in the CSV) joined by spaces, whitespace runs collapsed (BEIR keeps the raw "   \\n" inside some
structured abstracts; the words are the same). Qrels: claim id -> each of its `cited_doc_ids`, grade 1 (the BEIR
convention: a cited abstract is relevant whatever its SUPPORT/CONTRADICT label).

Splits, as two datasets over the same corpus:
- `scifact`: the 300 claims of `claims_validation.csv` (339 qrels) = BEIR scifact's test split; the evaluation
  queries. Distill-VQ trains on pseudo-queries only, so all 300 stay held out.
- `scifact-train`: the 809 claims of `claims_train.csv` (919 qrels) = BEIR's train split, for methods that may
  learn from real queries or labels; never mixed into `scifact`.
`claims_test.csv` (300 claims without cited documents, SciFact's hidden test) is not read.
"""
from __future__ import annotations

import ast
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from retrieval_kd.data.dataset import Dataset, Qrels
from retrieval_kd.data.files import clean, csv_records, need
from retrieval_kd.data.registry import register
from retrieval_kd.errors import DataFormatError

ZIP = "scifact.zip"
CORPUS_COLUMNS = ("doc_id", "title", "abstract", "structured")
CLAIM_COLUMNS = ("id", "claim", "evidence_doc_id", "evidence_label", "evidence_sentences", "cited_doc_ids")
_STR = re.compile(r"""\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", re.S)  # one Python string literal
_INTS = re.compile(r"\[([\d\s]*)\]")


def parse_str_array(text: str) -> list[str]:
    """The strings of a numpy array repr such as `['a'\\n "b's"]`; ValueError saying what is wrong."""
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")):
        raise ValueError(f"not a [...] array repr: {s[:40]!r}")
    body, pos, out = s[1:-1], 0, []
    while body[pos:].strip():
        m = _STR.match(body, pos)
        if not m:
            rest = body[pos:].strip()
            what = "truncated array ('...')" if rest.startswith("...") else f"unexpected text {rest[:40]!r}"
            raise ValueError(f"{what} after {len(out)} strings")
        out.append(ast.literal_eval(m.group(1)))
        pos = m.end()
    return out


def parse_int_array(text: str) -> list[str]:
    """The ids of a numpy integer array repr such as `[ 5152028 11705328]`, as strings."""
    m = _INTS.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not an integer array repr: {text.strip()[:40]!r}")
    return [str(int(x)) for x in m.group(1).split()]


def read_csv(zip_path: Path, member: str, columns: tuple[str, ...]) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(where, first line, row) of each record of a CSV inside the zip; the header must hold `columns`."""
    where = f"{zip_path}:{member}"
    with zipfile.ZipFile(need(zip_path)) as z:
        if member not in z.namelist():
            raise DataFormatError(zip_path, f"no member {member!r} (has: {', '.join(z.namelist())})")
        with z.open(member) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), strict=True)
            header = next(reader, [])
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataFormatError(where, f"header lacks column(s) {', '.join(missing)}", line=1, field=missing[0])
            for start, row in csv_records(reader, where):
                if len(row) != len(header):
                    raise DataFormatError(where, f"{len(row)} fields, the header has {len(header)}", line=start)
                yield where, start, dict(zip(header, row))


def read_corpus(zip_path: Path) -> list[dict[str, str]]:
    """Documents of corpus_train.csv: id = doc_id, contents = title + abstract sentences, title."""
    docs, seen = [], set()
    for where, line, row in read_csv(zip_path, "corpus_train.csv", CORPUS_COLUMNS):
        doc_id = row["doc_id"].strip()
        if not doc_id.isdigit():
            raise DataFormatError(where, f"doc_id {doc_id!r} is not a number", line=line, field="doc_id")
        if doc_id in seen:
            raise DataFormatError(where, f"duplicate doc_id {doc_id}", line=line, field="doc_id")
        seen.add(doc_id)
        try:
            sentences = parse_str_array(row["abstract"])
        except (ValueError, SyntaxError) as e:
            raise DataFormatError(where, f"abstract of doc {doc_id}: {e}", line=line, field="abstract") from None
        title, body = clean(row["title"]), clean(" ".join(sentences))
        docs.append({"id": doc_id, "contents": "\n".join(p for p in (title, body) if p), "title": title})
    return docs


def read_claims(zip_path: Path, member: str, doc_ids: set[str]) -> tuple[dict[str, str], Qrels]:
    """Claims (id -> text) and qrels (claim -> each cited doc, grade 1) of one claims CSV (a row per evidence doc)."""
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    for where, line, row in read_csv(zip_path, member, CLAIM_COLUMNS):
        qid, text = row["id"].strip(), clean(row["claim"])
        if not qid.isdigit() or not text:
            raise DataFormatError(where, f"claim needs a numeric id and text, got id {qid!r}", line=line, field="id")
        if queries.setdefault(qid, text) != text:
            raise DataFormatError(where, f"claim {qid} repeated with a different text", line=line, field="claim")
        try:
            cited = parse_int_array(row["cited_doc_ids"])
        except ValueError as e:
            raise DataFormatError(where, f"claim {qid}: {e}", line=line, field="cited_doc_ids") from None
        unknown = [d for d in cited if d not in doc_ids]
        if unknown:
            raise DataFormatError(where, f"claim {qid} cites documents not in the corpus: {unknown[:5]}",
                                  line=line, field="cited_doc_ids")
        for d in cited:
            qrels.setdefault(qid, {})[d] = 1
    return queries, qrels


SPLITS = {"test": "claims_validation.csv", "train": "claims_train.csv"}  # BEIR scifact's split names


def build_split(root: Path, name: str, member: str, note: str) -> Dataset:
    """The SciFact corpus with the claims and qrels of one claims CSV (zip under root/scifact/)."""
    return build_from_zip(root / "scifact" / ZIP, name, member, note)


def build_from_zip(path: Path, name: str, member: str, note: str) -> Dataset:
    """The SciFact corpus with the claims and qrels of one claims CSV of the zip at `path`."""
    corpus = read_corpus(path)
    queries, qrels = read_claims(path, member, {d["id"] for d in corpus})
    meta = {
        "source": "SciFact (allenai/scifact, CC BY-NC 2.0) as CSVs in sumithra-p-v/claimverifier data/scifact.zip, "
        "see scifact/PROVENANCE.md",
        "rel_threshold": 1,
        "grades": {"1": "cited by the claim (BEIR scifact qrels)"},
        "split": member,
        "notes": [
            note,
            "contents = title + abstract sentences (numpy array repr in the CSV) joined by spaces, whitespace "
            "collapsed; the `structured` flag is dropped",
            "qrels = claim id -> each cited_doc_id, grade 1, as BEIR scifact; evidence labels and sentences dropped",
        ],
    }
    return Dataset(name, corpus, queries, qrels, meta=meta)


@register("scifact", raw="scifact",
          description="SciFact claims vs abstracts (5,183 docs, 300 dev claims = BEIR test, 339 binary qrels)")
def build_scifact(root: Path) -> Dataset:
    """SciFact evaluation set: the 300 validation claims (BEIR scifact test split)."""
    return build_split(root, "scifact", "claims_validation.csv",
                       "queries = the 300 claims of claims_validation.csv (BEIR scifact test); the 809 train "
                       "claims are the separate dataset scifact-train")


@register("scifact-train", raw="scifact",
          description="SciFact train claims (5,183 docs, 809 claims = BEIR train, 919 binary qrels)")
def build_scifact_train(root: Path) -> Dataset:
    """SciFact training claims (BEIR scifact train split), over the same corpus."""
    return build_split(root, "scifact-train", "claims_train.csv",
                       "queries = the 809 claims of claims_train.csv (BEIR scifact train); evaluate on scifact")
