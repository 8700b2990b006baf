"""Baseline benchmark: exact MiniLM vs faiss IVF-PQ / OPQ+IVF-PQ on the classic collections.

    rkd bench baselines [--datasets cacm,med,...] [--nprobe 8] [--out runs/bench_baselines]
    python eval/baselines.py  (same options)

Columns: nDCG@10 and R@100 vs qrels (judged queries; binary measures at the dataset's rel_threshold),
teacher-recall@10 (share of the exact teacher's top-10 found in the index's top-10, all queries),
bytes per vector (code size), ms per query (one query at a time, search only, one thread), build seconds.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_kd.paths import run_path

if TYPE_CHECKING:
    import numpy as np

DATASETS = ("cacm", "med", "cisi", "cranfield", "cf")
DEFAULT_FACTORIES = (
    "IVFn,PQ8x8np", "IVFn,PQ16x8np", "IVFn,PQ32x8np",
    "OPQ8,IVFn,PQ8x8np", "OPQ16,IVFn,PQ16x8np", "OPQ32,IVFn,PQ32x8np",
)
DEFAULT_NPROBE = 8


@dataclass
class Prepared:
    """A dataset with its cached teacher embeddings and the exact teacher's run."""

    ds: Any
    doc_emb: np.ndarray
    qids: list[str]
    q_emb: np.ndarray
    exact: dict[str, dict[str, float]]
    exact_ms: float


def prepare(name: str, encoder: Any = None, depth: int = 100) -> Prepared:
    """Load a dataset, embed corpus + queries with the teacher (cached), and run exact search."""
    import numpy as np

    from retrieval_kd import datasets
    from retrieval_kd.index import FaissIndex
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus, encode_queries

    ds = datasets.load(name)
    if not ds.queries:
        from retrieval_kd.errors import RKDError

        raise RKDError(f"{name}: no queries, so no row can be measured (rkd quickstart evaluates on pseudo-queries)")
    encoder = encoder or DenseEncoder()
    doc_emb = np.asarray(encode_corpus(encoder, ds))
    qids, q_emb = encode_queries(encoder, ds.queries, ds.name)
    q_emb = np.asarray(q_emb)
    flat = FaissIndex.build(doc_emb, ds.doc_ids, "Flat")
    ms = ms_per_query(flat, q_emb, depth, None)
    return Prepared(ds, doc_emb, qids, q_emb, flat.search_run(qids, q_emb, depth), ms)


def ms_per_query(index: Any, q_emb: np.ndarray, k: int, nprobe: int | None) -> float:
    """Mean milliseconds of `index.search` over the queries, one query at a time."""
    t0 = time.perf_counter()
    for i in range(len(q_emb)):
        index.search(q_emb[i : i + 1], k, nprobe)
    return 1000 * (time.perf_counter() - t0) / max(1, len(q_emb))


def score_run(p: Prepared, run: dict, name: str, **extra) -> dict:
    """One table row: qrels measures + teacher-recall for a run over the prepared queries."""
    from retrieval_kd.evaluate import evaluate, teacher_recall

    m = evaluate(run, p.ds.qrels, ["nDCG@10", "R@100"], rel=p.ds.rel_threshold)
    row = {"dataset": p.ds.name, "index": name, "nDCG@10": m["nDCG@10"], "R@100": m["R@100"],
           "teacher-R@10": teacher_recall(run, p.exact, 10)}
    row.update(extra)
    return row


def baseline_rows(p: Prepared, factories: Sequence[str] = DEFAULT_FACTORIES, nprobe: int = DEFAULT_NPROBE,
                  seed: int = 0, save_dir: Path | None = None) -> list[dict]:
    """Exact row + one row per faiss factory string."""
    from retrieval_kd.index import FaissIndex

    rows = [score_run(p, p.exact, "exact (Flat)", bytes=float(p.doc_emb.shape[1] * 4), ms_q=p.exact_ms,
                      build_s=0.0)]
    for factory in factories:
        t0 = time.perf_counter()
        index = FaissIndex.build(p.doc_emb, p.ds.doc_ids, factory, seed=seed, meta={"dataset": p.ds.name})
        build_s = time.perf_counter() - t0
        run = index.search_run(p.qids, p.q_emb, 100, nprobe)
        rows.append(score_run(p, run, f"{index.factory} np={nprobe}", bytes=index.bytes_per_vector,
                              ms_q=ms_per_query(index, p.q_emb, 100, nprobe), build_s=build_s))
        if save_dir is not None:
            index.save(Path(save_dir) / p.ds.name / factory.replace(",", "_"))
    return rows


COLUMNS = ["dataset", "index", "nDCG@10", "R@100", "teacher-R@10", "bytes", "ms_q", "build_s"]


def run_baselines(datasets: Sequence[str] = DATASETS, factories: Sequence[str] = DEFAULT_FACTORIES,
                  nprobe: int = DEFAULT_NPROBE, out: str | Path = "runs/bench_baselines",
                  threads: int | None = None) -> list[dict]:
    """Run the baseline benchmark: print Markdown tables, write table.md and results.json under `out`."""
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.teachers.dense import DenseEncoder
    from retrieval_kd.threads import set_threads
    from retrieval_kd.utils import run_info, write_json

    settings = {"datasets": ",".join(datasets), "factories": ";".join(factories), "nprobe": nprobe,
                "out": str(out), "threads": threads}
    set_threads(threads)
    encoder = DenseEncoder()
    rows: list[dict] = []
    for name in datasets:
        p = prepare(name.strip(), encoder)
        rows += baseline_rows(p, list(factories), nprobe)
        print(format_table([r for r in rows if r["dataset"] == p.ds.name], COLUMNS), flush=True)
    table = format_table(rows, COLUMNS)
    out = run_path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    write_json(out / "results.json", {"rows": rows, "run_info": run_info(settings)})
    print("\n" + table)
    return rows
