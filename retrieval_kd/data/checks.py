"""Checks a dataset passes before it is written or read: judged documents and queries exist, grades meet the
relevance threshold, ids fit the TREC line formats. Each failure names the file and field."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_kd.errors import ConfigError, DataFormatError, DataWarning

if TYPE_CHECKING:
    from retrieval_kd.data.dataset import Dataset

MISSING = ("error", "drop")
SHOW = 5  # ids named in a message


def _ids(ids: list[str]) -> str:
    more = f" (+{len(ids) - SHOW} more)" if len(ids) > SHOW else ""
    return ", ".join(ids[:SHOW]) + more


def grade_counts(qrels: dict[str, dict[str, int]]) -> dict[str, int]:
    """{grade: number of judgements}, grades ascending (as strings, for meta.json)."""
    counts = Counter(g for docs in qrels.values() for g in docs.values())
    return {str(g): counts[g] for g in sorted(counts)}


def check_ids(ds: Dataset, where: str | Path) -> None:
    """Query and document ids must be non-empty text free of whitespace (they go into `qid 0 docid grade` and
    run lines)."""
    for qid in list(ds.queries) + list(ds.qrels):
        if not qid or any(c.isspace() for c in qid):
            raise DataFormatError(where, f"query id {qid!r} is empty or contains whitespace", field="qid")
    for doc_id in [d["id"] for d in ds.corpus] + [d for docs in ds.qrels.values() for d in docs]:
        if not isinstance(doc_id, str) or not doc_id or any(c.isspace() for c in doc_id):
            raise DataFormatError(where, f"document id {doc_id!r} is empty, not text or contains whitespace",
                                  field="docid")


def check_judgements(ds: Dataset, where: str | Path, missing: str = "error") -> None:
    """Every judged document is in the corpus (unless meta 'external_corpus' says the corpus lives elsewhere) and
    every judged query has a text; `missing="drop"` drops the others with a DataWarning instead of failing.
    Then some grade must reach rel_threshold. Sets meta 'grade_counts'. Changes ds.qrels only when dropping."""
    if missing not in MISSING:
        raise ConfigError(f"missing={missing!r}; choose one of {', '.join(MISSING)}")
    check_ids(ds, where)
    if not ds.meta.get("external_corpus"):
        corpus = set(ds.doc_ids)
        absent = sorted({d for docs in ds.qrels.values() for d in docs if d not in corpus})
        if absent:
            _missing(ds, where, "docid", absent, "judged documents are not in the corpus", missing,
                     lambda q, d: d not in corpus)
    absent_q = [q for q in ds.qrels if q not in ds.queries]
    if absent_q:
        _missing(ds, where, "qid", absent_q, "judged queries have no query text", missing, lambda q, d: q not in ds.queries)
    ds.meta["grade_counts"] = grade_counts(ds.qrels)
    check_threshold(ds, where)


def _missing(ds: Dataset, where: str | Path, field: str, ids: list[str], what: str, missing: str, gone: Any) -> None:
    if missing == "error":
        raise DataFormatError(where, f"{len(ids)} {what}: {_ids(ids)} (drop those judgements with "
                              f"missing='drop' / --drop-missing)", field=field)
    before = sum(len(v) for v in ds.qrels.values())
    ds.qrels = {q: kept for q, docs in ds.qrels.items() if (kept := {d: g for d, g in docs.items() if not gone(q, d)})}
    dropped = before - sum(len(v) for v in ds.qrels.values())
    warnings.warn(f"{where}: field '{field}': dropped {dropped} judgements: {len(ids)} {what}: {_ids(ids)}",
                  DataWarning, stacklevel=4)
    ds.meta.setdefault("dropped_judgements", {})[field] = {"judgements": dropped, "ids": len(ids)}


def check_threshold(ds: Dataset, where: str | Path) -> None:
    """With qrels present, at least one grade must reach rel_threshold (else every binary measure is 0)."""
    if not ds.qrels:
        return
    thr = ds.rel_threshold
    counts = grade_counts(ds.qrels)
    if not any(int(g) >= thr for g in counts):
        shown = ", ".join(f"{g}: {n}" for g, n in counts.items())
        raise DataFormatError(where, f"no judgement reaches rel_threshold {thr} (grades {{{shown}}}); set it "
                              f"to the lowest relevant grade (meta rel_threshold, --rel-threshold)", field="rel_threshold")
