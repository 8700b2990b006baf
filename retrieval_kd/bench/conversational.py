"""Served conversational bundles end to end: every judged turn through the bundle's own ONNX encoders and index.

    rkd bench conversational BUNDLE [BUNDLE ...] [--dataset cast-eval] [--threads N] [--out runs/bench-conv]

For each sparse-conversational bundle (one student or a query mixture), in-process and one turn at a time as the
route serves it: nDCG@3 and R@100 per evaluation set (so a bundle's figures can be set beside `rkd eval cast` /
`rkd eval cast-mix`), and the latency of encode + search per turn (p50 / p95 ms, turns/s). Same machine, same
run: compare bundles as ratios. `--threads` (default: all cores) sets onnxruntime's intra-op threads.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval_kd.bench.cast import score_rows, split_queries
from retrieval_kd.paths import run_path


def _turns(ds: Any) -> list[tuple[str, list[dict], str]]:
    return [(t["id"], [{"role": h["role"], "text": h["text"]} for h in t["history"]], t["utterance"])
            for c in ds.conversations for t in c["turns"]]


def bench_bundle(bundle: str | Path, ds: Any, threads: int | None = None, k: int = 100) -> list[dict]:
    """One row per evaluation set for a bundle: its served figures and per-turn latency."""
    import numpy as np

    from retrieval_kd.errors import BundleError
    from retrieval_kd.serving.bundle import open_bundle
    from retrieval_kd.serving.runtime import RuntimeOptions
    from retrieval_kd.threads import default_threads

    searcher = open_bundle(bundle, options=RuntimeOptions(threads=threads or default_threads()))
    try:
        if "conversational_search" not in searcher.capabilities:
            raise BundleError(f"{bundle}: kind {searcher.kind} has no conversational_search")
        splits = split_queries(ds)
        judged = {q for qids in splits.values() for q in qids}
        run, ms = {}, []
        for qid, history, utterance in _turns(ds):
            if qid not in judged:
                continue
            t0 = time.perf_counter()
            res = searcher.conversational_search(history, utterance, k)
            ms.append((time.perf_counter() - t0) * 1000)
            run[qid] = dict(zip(res.ids, map(float, res.scores), strict=True))
    finally:
        searcher.close()
    lat = {"p50 ms": float(np.percentile(ms, 50)), "p95 ms": float(np.percentile(ms, 95)),
           "turns/s": len(ms) / (sum(ms) / 1000)}
    mixing = searcher.manifest.get("mixing")
    encoders = len(mixing["members"]) + bool(mixing.get("utterance")) if mixing else 1
    rows = score_rows(searcher.name, run, ds, splits, {"encoders": encoders, **lat})
    return [{k: v for k, v in r.items() if k != "_pq"} for r in rows]


def run_bench(bundles: Sequence[str | Path], dataset: str = "cast-eval", threads: int | None = None,
              out: str | Path = "runs/bench-conv", command: str = "rkd bench conversational") -> list[dict]:
    """Bench every bundle on one dataset; print the table, write results.json and table.md."""
    from retrieval_kd.datasets import load
    from retrieval_kd.evaluate import format_table
    from retrieval_kd.utils import run_info, write_json

    ds = load(dataset)
    rows = [r for b in bundles for r in bench_bundle(b, ds, threads)]
    table = format_table(rows, ["query", "set", "role", "nDCG@3", "R@100", "turns", "encoders", "p50 ms", "p95 ms",
                                "turns/s"])
    text = f"`{command.strip()}`\n\n{table}\n"
    print(f"\n{text}")
    out = Path(run_path(out))
    write_json(out / "results.json", {"command": command, "dataset": dataset, "rows": rows, "run_info": run_info()})
    (out / "table.md").write_text(text, encoding="utf-8")
    return rows
