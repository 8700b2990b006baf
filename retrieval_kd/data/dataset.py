"""The one normalised dataset form: corpus.jsonl, queries.tsv, qrels.txt, conversations.jsonl, meta.json."""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval_kd.artifacts import read_meta, write_meta
from retrieval_kd.data.checks import check_judgements
from retrieval_kd.data.formats.trec import read_trec_qrels_lines
from retrieval_kd.errors import DataFormatError, DataNotFoundError
from retrieval_kd.utils import atomic_dir

FORMAT_VERSION = 1
Qrels = dict[str, dict[str, int]]


@dataclass
class Dataset:
    """A collection: documents, queries, graded qrels and (for conversational sets) conversations.

    corpus: list of {"id": str, "contents": str, ...extra fields}
    queries: qid -> text
    qrels: qid -> {docid: grade}; grades as in the source, negatives allowed
    conversations: list of {"id", "turns": [{"id", "utterance", "manual"?, "automatic"?, "response"?, ...}]}
    meta: free-form facts (source, counts, relevance conventions such as {"rel_threshold": 3}); "external_corpus"
          (why) marks a topics-only set whose judged documents live in a collection that is not here

    `save` and `load` run `checks.check_judgements`: judged documents must be in the corpus, judged queries must
    have a text, some grade must reach rel_threshold; meta "grade_counts" records the grades.
    """

    name: str
    corpus: list[dict[str, Any]]
    queries: dict[str, str] = field(default_factory=dict)
    qrels: Qrels = field(default_factory=dict)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def doc_ids(self) -> list[str]:
        return [d["id"] for d in self.corpus]

    @property
    def doc_texts(self) -> list[str]:
        return [d["contents"] for d in self.corpus]

    @property
    def rel_threshold(self) -> int:
        """Minimum grade counted as relevant for binary measures (meta 'rel_threshold', default 1)."""
        return int(self.meta.get("rel_threshold", 1))

    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one relevant judgement."""
        thr = self.rel_threshold
        return {q: t for q, t in self.queries.items() if any(g >= thr for g in self.qrels.get(q, {}).values())}

    def counts(self) -> dict[str, int]:
        return {
            "docs": len(self.corpus),
            "queries": len(self.queries),
            "judged_queries": len(self.judged_queries()),
            "qrels": sum(len(v) for v in self.qrels.values()),
            "conversations": len(self.conversations),
        }

    def save(self, dest: str | Path, compress: bool = False, missing: str = "error") -> Path:
        """Write the dataset folder atomically (temp folder, then rename), after the checks of
        `checks.check_judgements`; `missing="drop"` drops judgements of absent documents or queries (warning)."""
        dest = Path(dest)
        check_judgements(self, dest / "qrels.txt", missing)
        ext = ".gz" if compress else ""
        with atomic_dir(dest) as tmp:
            _write_lines(tmp / f"corpus.jsonl{ext}", (json.dumps(d, ensure_ascii=False) for d in self.corpus))
            _write_lines(tmp / f"queries.tsv{ext}", (f"{q}\t{_one_line(t)}" for q, t in self.queries.items()))
            _write_lines(
                tmp / f"qrels.txt{ext}",
                (f"{q} 0 {d} {g}" for q, docs in self.qrels.items() for d, g in docs.items()),
            )
            if self.conversations:
                _write_lines(
                    tmp / f"conversations.jsonl{ext}",
                    (json.dumps(c, ensure_ascii=False) for c in self.conversations),
                )
            write_meta(tmp, "dataset", FORMAT_VERSION, self.meta, name=self.name, counts=self.counts())
        self.path = dest
        return dest

    @classmethod
    def load(cls, src: str | Path) -> Dataset:
        """Read a dataset folder written by `save`."""
        src = Path(src)
        meta_path = src / "meta.json"
        if not meta_path.exists():
            raise DataNotFoundError(f"{src}: not a dataset folder (no meta.json)")
        meta = read_meta(src)
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(meta_path, f"format_version {meta.get('format_version')} != {FORMAT_VERSION}",
                                  field="format_version")
        corpus = []
        for p, i, line in _read_lines(src, "corpus.jsonl"):
            d = _parse_json(p, i, line)
            if not isinstance(d, dict) or "id" not in d or "contents" not in d:
                raise DataFormatError(p, "corpus record needs 'id' and 'contents'", line=i)
            corpus.append(d)
        queries = {}
        for p, i, line in _read_lines(src, "queries.tsv"):
            qid, sep, text = line.partition("\t")
            if not sep:
                raise DataFormatError(p, "expected '<qid>\\t<text>'", line=i)
            queries[qid] = text
        qrels = read_trec_qrels_lines(_read_lines(src, "qrels.txt"))
        convs = [_parse_json(p, i, line) for p, i, line in _read_lines(src, "conversations.jsonl", optional=True)]
        name = meta.pop("name", src.name)
        ds = cls(name=name, corpus=corpus, queries=queries, qrels=qrels, conversations=convs, meta=meta, path=src)
        check_judgements(ds, next(src.glob("qrels.txt*")), "error")
        return ds


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    if path.suffix == ".gz":  # mtime=0: the same content gives the same bytes
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for line in lines:
                gz.write((line + "\n").encode("utf-8"))
        return
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


def _read_lines(src: Path, name: str, optional: bool = False) -> Iterable[tuple[Path, int, str]]:
    path = src / name
    if not path.exists() and (src / f"{name}.gz").exists():
        path = src / f"{name}.gz"
    if not path.exists():
        if optional:
            return
        raise DataNotFoundError(f"{src}: missing {name}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if line.strip():
                yield path, i, line


def read_jsonl(path: str | Path, what: str = "file") -> Iterable[tuple[int, Any]]:
    """(line number, record) of each non-blank line of a JSONL file; a missing file or a malformed line is an
    error naming the file (as `what`), line and column."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path}: {what} not found")
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                yield i, _parse_json(path, i, line)


def _parse_json(path: Path, line_no: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=line_no) from None
