"""JSONL, TSV and CSV corpora and query files, read through a column mapping (`id=doc_id,text=body,title=headline`).

Without a mapping the usual column names are tried in order (see CORPUS_COLUMNS / QUERY_COLUMNS). A TSV or CSV file
without a header row maps columns by number, counted from 1 as `cut -f` does (`id=1,text=3,title=2`); a headerless
file of exactly two columns is read as id, text. TSV is split on tabs only (no quoting); CSV follows RFC 4180.
Documents: contents = title + "\\n" + text (title kept as its own field); other columns are dropped.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval_kd.data.dataset import _parse_json
from retrieval_kd.data.files import clean, csv_records, numbered_lines
from retrieval_kd.errors import ConfigError, DataFormatError

FORMATS = ("jsonl", "tsv", "csv")
CORPUS_COLUMNS = {"id": ("_id", "id", "docid", "doc_id", "docno", "pid"),
                  "text": ("text", "contents", "body", "passage", "abstract"), "title": ("title",)}
QUERY_COLUMNS = {"id": ("_id", "id", "qid", "query_id", "query-id", "topic_id"),
                 "text": ("text", "query", "question", "title")}
REQUIRED = ("id", "text")
Row = dict[str, Any] | list[str]


def parse_fields(spec: str | None, keys: tuple[str, ...] = ("id", "text", "title")) -> dict[str, str]:
    """'id=doc_id,text=body' -> {'id': 'doc_id', 'text': 'body'}; ConfigError on an unknown key or a bad item."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in (spec or "").split(","))):
        key, sep, col = (s.strip() for s in item.partition("="))
        if not sep or not col:
            raise ConfigError(f"--fields item {item!r}: expected KEY=COLUMN, e.g. id=doc_id")
        if key not in keys:
            raise ConfigError(f"--fields key {key!r} is not one of {', '.join(keys)}")
        out[key] = col
    return out


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, Row]]:
    """(first line number, row) of each non-blank record: a JSON object, or a list of cells."""
    if fmt == "jsonl":
        for i, line in numbered_lines(path):
            if line.strip():
                rec = _parse_json(path, i, line)
                if not isinstance(rec, dict):
                    raise DataFormatError(path, f"expected a JSON object, got {type(rec).__name__}", line=i)
                yield i, rec
    elif fmt == "tsv":
        for i, line in numbered_lines(path):
            if line.strip():
                yield i, line.split("\t")
    elif fmt == "csv":
        reader = csv.reader((line + "\n" for _, line in numbered_lines(path)), strict=True)
        yield from csv_records(reader, path)
    else:
        raise ConfigError(f"unknown table format {fmt!r}; known: {', '.join(FORMATS)}")


def _resolve(path: Path, line: int, columns: list[str], fields: dict[str, str], defaults: dict[str, tuple[str, ...]],
             header: bool) -> dict[str, int | str]:
    """Which column (name, or 0-based index without a header) feeds each key."""
    out: dict[str, int | str] = {}
    for key, options in defaults.items():
        if key in fields:
            col = fields[key]
            if not header:
                if not col.isdigit() or int(col) < 1:
                    raise ConfigError(f"--fields {key}={col}: {path} has no header row, give a column number "
                                      f"(from 1), e.g. {key}=2")
                out[key] = int(col) - 1
            elif col not in columns:
                raise DataFormatError(path, f"no column {col!r} (mapped to {key}); columns: {', '.join(columns)}",
                                      line=line, field=col)
            else:
                out[key] = col
        elif header:
            found = next((c for c in options if c in columns), None)
            if found is not None:
                out[key] = found
            elif key in REQUIRED:
                raise DataFormatError(path, f"no {key} column (tried {', '.join(options)}; columns: "
                                      f"{', '.join(columns)}); map one with --fields {key}=COLUMN", line=line)
    if not header and not fields:
        if len(columns) != 2:
            raise ConfigError(f"{path}: {len(columns)} columns and no header row: say which is which, e.g. "
                              f"--fields id=1,text=3,title=2")
        out = {"id": 0, "text": 1}
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise ConfigError(f"--fields needs {' and '.join(missing)} for {path}")
    return out


def _has_header(row: Row, fields: dict[str, str], defaults: dict[str, tuple[str, ...]]) -> bool:
    names = {fields[k] for k in fields if not fields[k].isdigit()} or set(defaults["id"])
    return any(c.strip() in names for c in row)


def read_table(path: str | Path, fmt: str, fields: dict[str, str] | None = None,
               defaults: dict[str, tuple[str, ...]] = CORPUS_COLUMNS,
               header: bool | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {"id", "text", "title"?}) of each record, values whitespace-collapsed; `header=None` (TSV) means
    "a first row naming the id column is a header"; CSV defaults to a header, JSONL has names in each record."""
    path, fields = Path(path), dict(fields or {})
    cols: dict[str, int | str] | None = None
    width = 0
    for i, row in _rows(path, fmt):
        if cols is None:
            if fmt == "jsonl":
                cols = _resolve(path, i, list(row), fields, defaults, True)
            else:
                has = _has_header(row, fields, defaults) if header is None and fmt == "tsv" else header is not False
                cols = _resolve(path, i, [c.strip() for c in row], fields, defaults, has)
                width = len(row)
                if has:
                    names = [c.strip() for c in row]
                    cols = {k: names.index(v) for k, v in cols.items()}  # type: ignore[arg-type]
                    continue
        yield i, _pick(path, i, row, cols, width)


def _pick(path: Path, line: int, row: Row, cols: dict[str, int | str], width: int) -> dict[str, str]:
    if isinstance(row, list) and len(row) != width:
        raise DataFormatError(path, f"{len(row)} columns where the first row has {width}", line=line)
    out = {}
    for key, col in cols.items():
        if isinstance(row, dict):
            if col not in row and key not in REQUIRED:
                value = ""
            elif col not in row:
                raise DataFormatError(path, f"record has no {col!r} (mapped to {key})", line=line, field=str(col))
            else:
                value = row[col]
        else:
            if col >= len(row):  # type: ignore[operator]
                raise DataFormatError(path, f"no column {col + 1} (mapped to {key}); the row has {len(row)}",
                                      line=line)
            value = row[col]  # type: ignore[index]
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise DataFormatError(path, f"{key} is a {type(value).__name__}, not text", line=line, field=str(col))
        out[key] = clean(str(value))
    return out


def _check_id(path: Path, line: int, value: str, seen: dict[str, int], what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise DataFormatError(path, f"{what} id {value!r} is empty or contains whitespace", line=line, field="id")
    if value in seen:
        raise DataFormatError(path, f"{what} id {value} already used on line {seen[value]}", line=line, field="id")
    seen[value] = line


def read_corpus(path: str | Path, fmt: str, fields: dict[str, str] | None = None,
                header: bool | None = None) -> list[dict[str, Any]]:
    """Documents {"id", "contents", "title"?} of a JSONL / TSV / CSV corpus; an empty file is an error."""
    path = Path(path)
    docs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, rec in read_table(path, fmt, fields, CORPUS_COLUMNS, header):
        _check_id(path, i, rec["id"], seen, "document")
        title = rec.get("title", "")
        doc: dict[str, Any] = {"id": rec["id"], "contents": "\n".join(p for p in (title, rec["text"]) if p)}
        if title:
            doc["title"] = title
        docs.append(doc)
    if not docs:
        raise DataFormatError(path, "no documents (empty corpus file)")
    return docs


def read_queries(path: str | Path, fmt: str, fields: dict[str, str] | None = None,
                 header: bool | None = None) -> dict[str, str]:
    """Queries {qid: text} of a JSONL / TSV / CSV file; an empty file or an empty query text is an error."""
    path = Path(path)
    queries: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, rec in read_table(path, fmt, fields, QUERY_COLUMNS, header):
        _check_id(path, i, rec["id"], seen, "query")
        if not rec["text"]:
            raise DataFormatError(path, f"query {rec['id']} has no text", line=i, field="text")
        queries[rec["id"]] = rec["text"]
    if not queries:
        raise DataFormatError(path, "no queries (empty queries file)")
    return queries
