"""Rows that compare an index with the exact teacher: nDCG@10, R@100, teacher-recall, bytes, ms/query."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

COLUMNS = ["dataset", "method", "bytes/vec", "nDCG@10", "R@100", "TR@10", "TR@100", "train s", "ms/query"]


class HeldOut:
    """The held-out real queries of a dataset, their teacher embeddings and the exact teacher's run."""

    def __init__(self, dataset: Any, qids: list[str], q_emb: np.ndarray, doc_emb: np.ndarray):
        from retrieval_kd.errors import RKDError
        from retrieval_kd.index.faiss_ivfpq import FaissIndex

        if not qids:
            raise RKDError(f"{dataset.name}: no held-out queries to measure on (rkd quickstart measures a collection "
                           "without queries on fresh pseudo-queries)")
        self.dataset = dataset
        self.qids = list(qids)
        self.q_emb = np.ascontiguousarray(q_emb, dtype=np.float32)
        self.exact = FaissIndex.build(doc_emb, dataset.doc_ids, "Flat")
        self.teacher_run = self.exact.search_run(self.qids, self.q_emb, 100)

    @classmethod
    def of(cls, dataset: Any, encoder: Any, eval_qids: list[str] | None = None) -> HeldOut:
        """Embed (cached) the dataset's held-out queries (all real queries by default) and documents."""
        from retrieval_kd.teachers.dense import encode_corpus, encode_queries

        qids = list(dataset.queries) if eval_qids is None else list(eval_qids)
        qids_all, q_all = encode_queries(encoder, dataset.queries, dataset.name)
        pos = {q: i for i, q in enumerate(qids_all)}
        q_emb = np.asarray(q_all)[[pos[q] for q in qids]]
        return cls(dataset, qids, q_emb, np.asarray(encode_corpus(encoder, dataset, show_progress=False)))

    def row(self, method: str, index: Any, nprobe: int | None, train_s: float | None = None,
            q_emb: np.ndarray | None = None, per_query: bool = False) -> dict[str, Any]:
        """Search the held-out queries with `index` (a FaissIndex) and measure it against qrels and the teacher.

        nDCG@10 and R@100 are "" (not measured) when none of the queries is judged; `per_query` adds
        "per-query TR@10" ({qid: share}) for win/loss plots."""
        from retrieval_kd.evaluate import evaluate, teacher_recall_per_query

        q = self.q_emb if q_emb is None else q_emb
        run = index.search_run(self.qids, q, 100, nprobe)
        t0 = time.perf_counter()
        for i in range(len(q)):  # one query at a time, as a server sees them
            index.search(q[i : i + 1], 100, nprobe)
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(q))
        judged = [qid for qid in self.qids if self.dataset.qrels.get(qid)]
        m = evaluate(run, self.dataset.qrels, ["nDCG@10", "R@100"], rel=self.dataset.rel_threshold,
                     queries=self.qids) if judged else {"nDCG@10": "", "R@100": ""}
        tr10 = teacher_recall_per_query(run, self.teacher_run, 10)
        tr100 = teacher_recall_per_query(run, self.teacher_run, 100)
        size = float(index.bytes_per_vector)
        row = {"dataset": self.dataset.name, "method": method, "bytes/vec": int(size) if size.is_integer() else size,
               "nDCG@10": m["nDCG@10"], "R@100": m["R@100"],
               "TR@10": float(np.mean(list(tr10.values()))) if tr10 else 0.0,
               "TR@100": float(np.mean(list(tr100.values()))) if tr100 else 0.0,
               "train s": round(train_s, 1) if train_s is not None else "", "ms/query": round(ms, 3)}
        if per_query:
            row["per-query TR@10"] = {qid: round(v, 4) for qid, v in tr10.items()}
        return row
