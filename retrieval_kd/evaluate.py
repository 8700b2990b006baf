"""ir-measures wrapper, TREC run reader/writer, teacher-recall, bootstrap intervals."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.errors import DataFormatError
from retrieval_kd.utils import atomic_file

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

DEFAULT_MEASURES = ("nDCG@10", "R@100")


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str = "rkd") -> Path:
    """Write a TREC run file (qid Q0 docid rank score tag), ranks by descending score, atomically."""
    path = Path(path)
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (doc, score) in enumerate(ranked, 1):
                fh.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")
    return path


def read_run(path: str | Path) -> Run:
    """Read a TREC run file, naming file and line on a malformed row."""
    run: Run = {}
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise DataFormatError(path, f"run line needs 6 columns (qid Q0 docid rank score tag), got {len(parts)}",
                                      line=i)
            try:
                score = float(parts[4])
            except ValueError:
                raise DataFormatError(path, f"score {parts[4]!r} is not a number", line=i, field="score") from None
            run.setdefault(parts[0], {})[parts[2]] = score
    return run


def read_qrels(path: str | Path) -> Qrels:
    """Read a TREC qrels file (qid iter docid grade)."""
    from retrieval_kd.data.dataset import read_trec_qrels_lines

    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        return read_trec_qrels_lines((path, i, ln) for i, ln in enumerate(fh, 1) if ln.strip())


def _parse(measures: Iterable[str | object]):
    import ir_measures

    return [ir_measures.parse_measure(m) if isinstance(m, str) else m for m in measures]


def with_rel(measure: str, rel: int) -> str:
    """Add a relevance threshold to a binary measure string: 'R@100' -> 'R(rel=2)@100'."""
    if rel <= 1 or "(" in measure or measure.startswith(("nDCG", "ndcg")):
        return measure
    name, _, cutoff = measure.partition("@")
    return f"{name}(rel={rel})" + (f"@{cutoff}" if cutoff else "")


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    rel: int = 1,
    per_query: bool = False,
    queries: Iterable[str] | None = None,
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean (or per-query) measures by ir-measures strings, over judged queries (or `queries`).

    `rel` sets the minimum grade for binary measures (RR, R, P, Success); nDCG uses graded gains.
    Queries judged but missing from the run score 0 (they still count in the mean).
    """
    import ir_measures

    keep = set(queries) if queries is not None else set(qrels)
    q = {qid: {d: int(g) for d, g in docs.items()} for qid, docs in qrels.items() if qid in keep}
    r = {qid: {d: float(s) for d, s in docs.items()} for qid, docs in run.items() if qid in q}
    names = list(measures)
    parsed = _parse(with_rel(m, rel) for m in names)
    by_parsed = dict(zip(map(str, parsed), names))
    judged = [qid for qid, docs in q.items() if any(g >= max(rel, 1) for g in docs.values())]
    if per_query:
        out: dict[str, dict[str, float]] = {m: {qid: 0.0 for qid in judged} for m in names}
        for m in ir_measures.iter_calc(parsed, q, r):
            if m.query_id in out[by_parsed[str(m.measure)]]:
                out[by_parsed[str(m.measure)]][m.query_id] = float(m.value)
        return out
    pq = evaluate(run, qrels, names, rel=rel, per_query=True, queries=keep)
    return {m: float(np.mean(list(v.values()))) if v else 0.0 for m, v in pq.items()}


def teacher_recall(run: Mapping[str, Mapping[str, float]], teacher: Mapping[str, Mapping[str, float]], k: int) -> float:
    """Mean share of the teacher's top-k documents found in the run's top-k."""
    vals = []
    for qid, tdocs in teacher.items():
        ttop = {d for d, _ in sorted(tdocs.items(), key=lambda kv: -kv[1])[:k]}
        if not ttop:
            continue
        rtop = {d for d, _ in sorted(run.get(qid, {}).items(), key=lambda kv: -kv[1])[:k]}
        vals.append(len(ttop & rtop) / len(ttop))
    return float(np.mean(vals)) if vals else 0.0


def bootstrap_ci(values: Sequence[float], n: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))




def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table from dict rows (floats to 3 decimals)."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
