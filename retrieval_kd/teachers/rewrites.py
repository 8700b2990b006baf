"""Rewrite teachers: the frozen SPLADE encoder applied to a rewritten query, and how several are aggregated.

A teacher is a name plus a source of rewrites, one per training turn:
  "manual"     the human rewrite (CAsT `manual_rewritten_utterance`; iKAT `resolved_utterance`)
  "automatic"  the organisers' automatic rewrite (CAsT 2020–2022)
  <path>.jsonl any file of `{"id": <turn id>, "rewrite": <text>}` lines, e.g. LLM rewrites a user made
A turn without a rewrite from a teacher is simply not taught by that teacher.

Aggregation of several teachers' scores s_t over the same candidate documents (per turn, over the teachers that
have a rewrite for it; T is the distillation temperature; with one teacher all three reduce to softmax(s/T)):
  mean     score average after per-teacher normalisation: each teacher's scores are standardised over the
           candidates (z = (s - mean) / std), averaged, and rescaled by the teachers' mean std, then softmax(·/T)
  mixture  average of the teacher distributions: p = mean_t softmax(s_t / T)
  union    max over teachers: a document gets the highest of its standardised (rescaled) teacher scores, so a
           document any teacher ranks high is a target, then softmax(·/T)
In all three, the candidate documents come from the union of the teachers' top-ranked lists.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from retrieval_kd.data.dataset import read_jsonl
from retrieval_kd.errors import ConfigError, DataFormatError

AGGREGATIONS = ("mean", "mixture", "union")
FIELDS = {"manual": "manual", "human": "manual", "automatic": "automatic"}


def read_rewrites_jsonl(path: str | Path) -> dict[str, str]:
    """{turn id: rewrite} from a JSONL file of {"id", "rewrite"} records."""
    path = Path(path)
    out = {}
    for i, rec in read_jsonl(path, "rewrites file"):
        for key in ("id", "rewrite"):
            if not isinstance(rec, dict) or not isinstance(rec.get(key), str):
                raise DataFormatError(path, f"each line needs a string '{key}'", line=i, field=key)
        out[rec["id"]] = " ".join(rec["rewrite"].split())
    return out


def load_rewrites(source: str, turns: Sequence[Mapping]) -> dict[str, str]:
    """{turn id: rewrite} of one teacher source for the given turns."""
    if source in FIELDS:
        key = FIELDS[source]
        return {t["id"]: t[key] for t in turns if t.get(key)}
    if source.endswith((".jsonl", ".json")) or "/" in source:
        ids = {t["id"] for t in turns}
        return {k: v for k, v in read_rewrites_jsonl(source).items() if k in ids}
    raise ConfigError(f"teacher source {source!r}: use 'manual', 'automatic' or a path to a .jsonl file")


def _standardise(s: np.ndarray, avail: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.maximum(mask.sum(-1, keepdims=True), 1)
    mu = (s * mask).sum(-1, keepdims=True) / n
    sd = np.sqrt((((s - mu) * mask) ** 2).sum(-1, keepdims=True) / n) + 1e-6
    z = (s - mu) / sd
    scale = (sd[..., 0] * avail).sum(0) / np.maximum(avail.sum(0), 1)  # [B] mean std of available teachers
    return z, scale


def _softmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.where(mask, x, -np.inf)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def aggregate(scores: np.ndarray, available: np.ndarray, method: str = "mean", temperature: float = 1.0,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Target distribution [B, C] from teacher scores [T, B, C] and availability [T, B] (see module doc).

    `mask` [B, C] marks each turn's own candidates (default: all); masked-out documents get probability 0.
    """
    if method not in AGGREGATIONS:
        raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
    scores = np.asarray(scores, dtype=np.float64)
    avail = np.asarray(available, dtype=bool)
    if not avail.any(0).all():
        raise ValueError("every turn needs at least one teacher")
    mask = np.ones(scores.shape[1:], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    w = avail[..., None].astype(np.float64)
    if method == "mixture":
        p = _softmax(scores / temperature, mask)
        return ((p * w).sum(0) / w.sum(0)).astype(np.float32)
    z, scale = _standardise(scores, avail, mask)
    if method == "mean":
        agg = (z * w).sum(0) / w.sum(0)
    else:
        agg = np.where(avail[..., None], z, -np.inf).max(0)
    return _softmax(agg * scale[:, None] / temperature, mask).astype(np.float32)


class RewriteTeachers:
    """Several rewrite teachers over one list of turns: SPLADE vectors of their rewrites and availability."""

    def __init__(self, names: Sequence[str], rewrites: Sequence[Mapping[str, str]], turn_ids: Sequence[str],
                 encoder, cache_key: str = "rewrites"):
        import scipy.sparse as sp

        from retrieval_kd.teachers.splade import encode_cached

        self.names = list(names)
        self.turn_ids = list(turn_ids)
        self.available = np.zeros((len(self.names), len(self.turn_ids)), dtype=bool)
        self.vectors = []
        for t, rw in enumerate(rewrites):
            rows = [i for i, tid in enumerate(self.turn_ids) if tid in rw]
            self.available[t, rows] = True
            enc = encode_cached(encoder, [rw[self.turn_ids[i]] for i in rows], f"{cache_key}:{self.names[t]}",
                                show_progress=False)
            place = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, np.arange(len(rows)))),
                                  shape=(len(self.turn_ids), len(rows)))
            self.vectors.append((place @ enc).tocsr() if rows else sp.csr_matrix((len(self.turn_ids), enc.shape[1]),
                                                                                    dtype=np.float32))

    def scores(self, rows: Sequence[int], docs) -> np.ndarray:
        """Teacher scores [T, len(rows), n_docs] against a [n_docs, vocab] sparse matrix (0 where unavailable)."""
        out = np.stack([np.asarray((v[list(rows)] @ docs.T).toarray(), dtype=np.float32) for v in self.vectors])
        return out * self.available[:, list(rows)][..., None]

    def mean_vectors(self, rows: Sequence[int]):
        """CSR [len(rows), vocab]: per turn, the mean SPLADE vector of the teachers that have a rewrite for it."""
        import scipy.sparse as sp

        rows = list(rows)
        n = np.maximum(self.available[:, rows].sum(0), 1).astype(np.float32)
        total = sum(v[rows] for v in self.vectors)
        return (sp.diags(1.0 / n) @ total).tocsr()

    @staticmethod
    def rank(queries, docs, depth: int, chunk: int = 256) -> np.ndarray:
        """Top-`depth` document indices [n_queries, depth] by exact sparse dot product (ties: corpus order)."""
        depth = min(depth, docs.shape[0])
        out = np.empty((queries.shape[0], depth), dtype=np.int64)
        for lo in range(0, queries.shape[0], chunk):
            s = np.asarray((queries[lo : lo + chunk] @ docs.T).toarray())
            out[lo : lo + chunk] = np.argsort(-s, axis=1, kind="stable")[:, :depth]
        return out

    def rankings(self, docs, depth: int) -> np.ndarray:
        """Each teacher's top-`depth` document indices per turn [T, n_turns, depth] (-1 where unavailable)."""
        out = np.stack([self.rank(v, docs, depth) for v in self.vectors])
        out[~self.available] = -1
        return out
