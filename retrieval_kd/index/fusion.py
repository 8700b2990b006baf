"""Fusion of ranked runs: reciprocal rank fusion (sum) and its best-rank variant (torch-free)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

Run = dict[str, dict[str, float]]


def rrf(runs: Sequence[Mapping[str, Mapping[str, float]]], k: int = 60, depth: int = 1000) -> Run:
    """Reciprocal rank fusion of several runs (score = Σ 1/(k + rank))."""
    fused: Run = {}
    for run in runs:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
            acc = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(ranked, 1):
                acc[doc] = acc.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def rrf_max(runs: Sequence[Mapping[str, Mapping[str, float]]], k: int = 60, depth: int = 1000) -> Run:
    """Reciprocal-rank fusion taking each document's best rank instead of the sum (an interleave of the lists)."""
    fused: Run = {}
    for run in runs:
        for qid, docs in run.items():
            acc = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:depth], 1):
                acc[doc] = max(acc.get(doc, 0.0), 1.0 / (k + rank))
    return fused


FUSIONS = {"rrf": rrf, "rrf-max": rrf_max}
