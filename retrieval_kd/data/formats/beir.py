"""BEIR folders: `corpus.jsonl` (_id, title, text), `queries.jsonl` (_id, text), `qrels/<split>.tsv`
(`query-id corpus-id score`, header first). Each file may also be gzipped (`corpus.jsonl.gz`).

As BEIR's own loader does, the queries kept are those judged in the chosen split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data.formats.tabular import read_corpus, read_queries
from retrieval_kd.data.formats.trec import Qrels, read_qrels
from retrieval_kd.errors import DataNotFoundError


def find(folder: Path, name: str) -> Path:
    """folder/name or folder/name.gz; DataNotFoundError naming both when neither is there."""
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise DataNotFoundError(f"{folder}: no {name} (nor {name}.gz); not a BEIR folder?")


def splits(folder: Path) -> list[str]:
    """The qrels splits of a BEIR folder (names of qrels/*.tsv)."""
    qdir = folder / "qrels"
    return sorted(p.name.split(".")[0] for p in qdir.glob("*.tsv*")) if qdir.is_dir() else []


def read_beir(folder: str | Path, split: str = "test", fields: dict[str, str] | None = None,
              query_fields: dict[str, str] | None = None, queries_path: Path | None = None,
              qrels_path: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, str], Qrels, dict[str, Any]]:
    """(corpus, queries judged in `split`, qrels of `split`, meta facts) of a BEIR folder (judged queries missing
    from queries.jsonl are left to the dataset checks, which name them)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder}: not a folder (a BEIR dataset is a folder with corpus.jsonl, "
                                f"queries.jsonl, qrels/)")
    corpus = read_corpus(find(folder, "corpus.jsonl"), "jsonl", fields)
    qpath = queries_path or find(folder, "queries.jsonl")
    all_queries = read_queries(qpath, "jsonl", query_fields)
    if qrels_path is None:
        known = splits(folder)
        if split not in known:
            raise DataNotFoundError(f"{folder / 'qrels'}: no split {split!r}; known: {', '.join(known) or 'none'}")
        qrels_path = find(folder / "qrels", f"{split}.tsv")
    qrels = read_qrels(qrels_path)
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    meta = {"split": split, "queries_in_file": len(all_queries),
            "notes": [f"queries = the {len(queries)} of {len(all_queries)} in {qpath.name} judged in "
                      f"{Path(qrels_path).name} (as BEIR's loader keeps them)"]}
    return corpus, queries, qrels, meta
