"""Training queries for collections with few real ones: seeded random word spans of documents, and a fixed split."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval_kd.utils import sha256_text

SPLIT_SALT = "distill-vq-split-v1"


DEFAULT_PER_DOC = 6.0
MAX_PSEUDO = 100_000


def pseudo_count(n_docs: int, budget: int | None = None, per_doc: float | None = None) -> float:
    """Pseudo-queries per document: `per_doc`, else `budget` / n_docs, else 6 per document up to 100,000 in all."""
    if per_doc is not None:
        return float(per_doc)
    total = budget if budget is not None else min(DEFAULT_PER_DOC * n_docs, MAX_PSEUDO)
    return float(total) / max(1, n_docs)


def query_lengths(queries: Sequence[str], min_count: int = 10, longest: int = 128) -> np.ndarray | None:
    """Word counts of real query texts to draw span lengths from (None when there are fewer than `min_count`)."""
    counts = [min(longest, max(2, len(q.split()))) for q in queries if q.strip()]
    return np.asarray(counts, dtype=np.int64) if len(counts) >= min_count else None


def pseudo_queries(
    texts: Sequence[str], per_doc: float, min_words: int = 8, max_words: int = 20, seed: int = 0,
    lengths: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """Random word spans of the documents; returns (queries, source document rows).

    Each document yields floor(per_doc) spans plus one more with probability frac(per_doc). A span's length is
    drawn from `lengths` (e.g. the real queries' word counts) when given, else uniformly from
    `min_words`..`max_words`; a document shorter than the span gives its whole text. Same inputs -> same queries.
    """
    rng = np.random.default_rng([seed, 8_20])
    whole, frac = int(per_doc), per_doc - int(per_doc)
    counts = whole + (rng.random(len(texts)) < frac)
    out: list[str] = []
    src: list[int] = []
    for row, (text, n) in enumerate(zip(texts, counts)):
        words = text.split()
        if not words:
            continue
        for _ in range(int(n)):
            if lengths is not None:
                length = int(lengths[rng.integers(0, len(lengths))])
            else:
                length = int(rng.integers(min_words, max_words + 1))
            start = int(rng.integers(0, max(1, len(words) - length + 1)))
            out.append(" ".join(words[start : start + length]))
            src.append(row)
    return out, np.asarray(src, dtype=np.int64)


def in_train_split(qid: str, fraction: float) -> bool:
    """Whether a real query joins training: a fixed hash of its id, independent of seeds and order."""
    if fraction <= 0:
        return False
    return int(sha256_text(SPLIT_SALT, qid)[:8], 16) / 0xFFFFFFFF < fraction


def split_queries(qids: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """(training qids, held-out evaluation qids); with fraction 0 every real query is held out."""
    train = [q for q in qids if in_train_split(q, fraction)]
    chosen = set(train)
    return train, [q for q in qids if q not in chosen]
