"""ir-measures wrapper, teacher-recall, bootstrap intervals; the TREC run and qrels reader/writer live in
`data.formats.trec` (re-exported here)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from retrieval_kd.data.formats.trec import Qrels, Run, read_qrels, read_run, write_run  # noqa: F401  (re-exported)

DEFAULT_MEASURES = ("nDCG@10", "R@100")


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


def teacher_recall_per_query(run: Mapping[str, Mapping[str, float]], teacher: Mapping[str, Mapping[str, float]],
                             k: int) -> dict[str, float]:
    """Per query: the share of the teacher's top-k documents found in the run's top-k."""
    out = {}
    for qid, tdocs in teacher.items():
        ttop = {d for d, _ in sorted(tdocs.items(), key=lambda kv: -kv[1])[:k]}
        if not ttop:
            continue
        rtop = {d for d, _ in sorted(run.get(qid, {}).items(), key=lambda kv: -kv[1])[:k]}
        out[qid] = len(ttop & rtop) / len(ttop)
    return out


def teacher_recall(run: Mapping[str, Mapping[str, float]], teacher: Mapping[str, Mapping[str, float]], k: int) -> float:
    """Mean share of the teacher's top-k documents found in the run's top-k."""
    vals = list(teacher_recall_per_query(run, teacher, k).values())
    return float(np.mean(vals)) if vals else 0.0


def bootstrap_ci(values: Sequence[float], n: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], n: int = 10_000, alpha: float = 0.05,
                     seed: int = 0) -> dict[str, float | int]:
    """Paired bootstrap of mean(a - b) over the queries both have: the difference, its percentile interval and
    the per-query wins / ties / losses of `a` (a query missing from one side is an error: pair them first)."""
    from retrieval_kd.errors import RKDError

    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise RKDError(f"paired bootstrap: {len(only)} queries on one side only (e.g. {only[:3]})")
    qids = sorted(a)
    d = np.asarray([a[q] - b[q] for q in qids], dtype=np.float64)
    lo, hi = bootstrap_ci(d, n=n, alpha=alpha, seed=seed)
    return {"diff": float(d.mean()) if len(d) else 0.0, "lo": lo, "hi": hi, "n": len(d),
            "wins": int((d > 1e-12).sum()), "losses": int((d < -1e-12).sum()),
            "ties": int((np.abs(d) <= 1e-12).sum())}


def format_paired(pb: Mapping[str, float | int], wtl: bool = True) -> str:
    """'+0.043 [+0.015, +0.075]' (and ' 42/7/29' wins/ties/losses with `wtl`) from a `paired_bootstrap` result."""
    out = f"{pb['diff']:+.3f} [{pb['lo']:+.3f}, {pb['hi']:+.3f}]"
    return f"{out} {pb['wins']}/{pb['ties']}/{pb['losses']}" if wtl else out


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
