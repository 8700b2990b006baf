"""`rkd quickstart`: one command from a collection to a served, reported Distill-VQ index.

Steps (each prints what it does and how long it took): dataset (import or load) → teacher encoding of the
documents (content-addressed cache, resumable, ETA printed) → evaluation queries (the real ones, every one held
out, else 300 fresh pseudo-queries that neither train nor select) → faiss baselines (IVFPQ at m bytes, OPQ+IVFPQ at
m/2, m, 2m) → Distill-VQ at m bytes from the OPQ start → serving bundle → results.json, report.md, plots →
optionally `rkd serve` on the bundle.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

EVAL_PSEUDO = 300  # evaluation pseudo-queries when the collection has no real queries
EVAL_SEED = 7_919  # their seed: not the training seed, so they are other spans than the training ones


class Steps:
    """Numbered, timed step lines."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.times: dict[str, float] = {}
        self._last: tuple[str, float] | None = None

    def __call__(self, key: str, text: str) -> None:
        self.done()
        self.n += 1
        typer.echo(f"[{self.n}/{self.total}] {text}")
        self._last = (key, time.perf_counter())

    def done(self) -> None:
        if self._last is not None:
            key, t = self._last
            self.times[key] = round(time.perf_counter() - t, 2)
            typer.echo(f"      ({self.times[key]:.1f} s)")
            self._last = None


def eval_queries(ds: Any, encoder: Any) -> tuple[Any, str]:
    """The held-out queries rows are measured on, and what they are."""
    from retrieval_kd.methods.distill_vq.queries import pseudo_queries
    from retrieval_kd.methods.distill_vq.report import HeldOut
    from retrieval_kd.teachers.dense import encode_corpus, encode_queries

    if ds.queries:
        judged = sum(1 for q in ds.queries if ds.qrels.get(q))
        return HeldOut.of(ds, encoder), f"evaluation: {len(ds.queries)} real queries ({judged} judged), none trains"
    per_doc = min(1.0, EVAL_PSEUDO / max(1, len(ds.doc_ids)))
    texts, _ = pseudo_queries(ds.doc_texts, per_doc, seed=EVAL_SEED)
    texts = texts[:EVAL_PSEUDO]
    qids = [f"pseudo-{i}" for i in range(len(texts))]
    _, q_emb = encode_queries(encoder, dict(zip(qids, texts)), f"{ds.name}:quickstart-eval")
    docs = np.asarray(encode_corpus(encoder, ds, show_progress=False))
    return HeldOut(ds, qids, np.asarray(q_emb), docs), (
        f"evaluation: no real queries, so {len(texts)} fresh pseudo-queries (seed {EVAL_SEED}) that neither train "
        "nor select; nDCG and R@100 need judged queries")


def baseline_rows(ds: Any, held: Any, m: int, nprobe: int, seed: int, cfg: Any) -> tuple[list[dict], Any]:
    """faiss IVFPQ at m bytes and OPQ+IVFPQ at m/2, m, 2m; returns (rows, the OPQ m start)."""
    from retrieval_kd.index.faiss_ivfpq import FaissIndex

    docs = held.exact.index.reconstruct_n(0, held.exact.index.ntotal)
    exact = held.row("exact teacher (float32)", held.exact, None)
    exact.update({"bytes/vec": held.exact.index.d * 4, "family": "exact"})
    rows, start = [exact], None
    t0 = time.perf_counter()
    ivf = FaissIndex.build(docs, ds.doc_ids, f"IVFn,PQ{m}x8np", seed=seed)
    rows.append({**held.row(f"faiss IVFPQ {m}B", ivf, nprobe, time.perf_counter() - t0, per_query=True),
                 "family": "faiss IVFPQ"})
    for size in sorted({max(2, m // 2), m, 2 * m}):
        if 384 % size:
            continue
        t0 = time.perf_counter()
        opq = FaissIndex.build(docs, ds.doc_ids, f"OPQ{size},IVFn,PQ{size}x8np", seed=seed,
                               train_size=cfg.index.train_size, opq_iterations=cfg.index.opq_iterations)
        rows.append({**held.row(f"faiss OPQ+IVFPQ {size}B", opq, nprobe, time.perf_counter() - t0,
                                per_query=size == m), "family": "faiss OPQ+IVFPQ"})
        if size == m:
            start = opq
    return rows, start


def train_row(ds: Any, held: Any, cfg: Any, start: Any, out: Path) -> tuple[dict, Any]:
    """Distill-VQ from the OPQ start; saves the index under out/index."""
    from retrieval_kd.methods.distill_vq.trainer import DistillVQ

    vq = DistillVQ(cfg)
    vq.fit(ds, start=start)
    vq.save(out / "index")
    row = held.row(f"Distill-VQ {cfg.index.factory.split(',')[-1][:-2]} ({cfg.loss.name})", vq.index,
                   cfg.index.nprobe, vq.timings["run_s"], per_query=True)
    return {**row, "family": "Distill-VQ"}, vq


def results_of(ds: Any, rows: list[dict], vq: Any, eval_note: str, command: str, steps: Steps) -> dict:
    from retrieval_kd.methods.distill_vq.report import COLUMNS
    from retrieval_kd.utils import run_info

    m = int(rows[-1]["bytes/vec"])
    base = next(r for r in rows if r["method"] == f"faiss OPQ+IVFPQ {m}B")
    val = vq.result.get("validation") or {}
    notes = [eval_note, f"Distill-VQ trained on {vq.split['pseudo_queries']} pseudo-queries (no labels); "
             f"{'kept the faiss start: no step beat it' if val.get('kept_start') else 'best held-out step kept'}"]
    return {
        "title": f"quickstart: {ds.name} at {m} bytes per vector",
        "dataset": {"name": ds.name, "docs": len(ds.doc_ids), "queries": len(ds.queries),
                    "judged": sum(1 for q in ds.queries if ds.qrels.get(q))},
        "command": command, "rows": rows, "columns": [c for c in COLUMNS if c != "dataset"],
        "training": {"loss_curve": vq.result.get("loss_curve", []), "validation": val},
        "per_query": {"baseline": base["method"], "method": rows[-1]["method"],
                      "values": {r["method"]: r["per-query TR@10"] for r in (base, rows[-1])}},
        "timings": dict(steps.times), "notes": notes, "run_info": run_info(),
    }


def run_quickstart(ds: Any, out: Path, m: int = 8, nprobe: int = 16, seed: int = 0, serve: bool = False,
                   quiet: bool = False, command: str = "rkd quickstart", port: int = 8000,
                   sets: list[str] | None = None, query: str | None = None) -> dict:
    """Run every step on a Dataset (saved under out/dataset when it has no folder); returns the results written
    to out/results.json. `sets`: Distill-VQ config overrides (`--set train.min_samples=5000`)."""
    from retrieval_kd.bench.distill_vq import config_for
    from retrieval_kd.bench.report import write_results
    from retrieval_kd.errors import RKDError
    from retrieval_kd.index.faiss_ivfpq import MIN_OPQ_TRAIN
    from retrieval_kd.progress import progress_enabled
    from retrieval_kd.teachers.dense import DenseEncoder, encode_corpus
    from retrieval_kd.threads import set_threads

    if len(ds.doc_ids) < MIN_OPQ_TRAIN:
        raise RKDError(f"{ds.name}: {len(ds.doc_ids)} documents; quickstart needs at least {MIN_OPQ_TRAIN} (faiss OPQ "
                       "training), and exact search is the right index below that")
    set_threads()
    show = progress_enabled(quiet)
    steps = Steps(5)
    cfg = config_for(ds.name, m, nprobe, [f"seed={seed}", f"train.progress={str(show).lower()}", *(sets or [])])
    if ds.path is None:
        ds.save(out / "dataset")
    steps("encode", f"teacher: {len(ds.doc_ids)} documents with all-MiniLM-L6-v2 (cached by content, resumable)")
    encoder = DenseEncoder(cfg.teacher.model, max_length=cfg.teacher.max_length)
    encode_corpus(encoder, ds, show_progress=show)
    held, eval_note = eval_queries(ds, encoder)
    steps("baselines", f"faiss baselines at {m} B (IVFPQ, OPQ+IVFPQ; OPQ also at {max(2, m // 2)} and {2 * m} B); "
          f"{eval_note}")
    rows, start = baseline_rows(ds, held, m, nprobe, seed, cfg)
    steps("distill", f"Distill-VQ {cfg.index.factory} from the OPQ start, pseudo-queries only, early-stopped")
    row, vq = train_row(ds, held, cfg, start, out)
    rows.append(row)
    steps("bundle", f"serving bundle {out / 'bundle'} (ONNX query encoder, parity-checked)")
    from retrieval_kd.export.dense import build_bundle

    build_bundle(out / "index", out / "bundle", name=ds.name, dataset=str(ds.path))
    steps("report", f"results.json, report.md and plots in {out}")
    results = results_of(ds, rows, vq, eval_note, command, steps)
    steps.done()
    results["timings"] = {**steps.times, "total": round(time.perf_counter() - steps.t0, 2)}
    write_results(out, results)  # once, with every step's seconds (the report step: assembling the results)
    print_summary(results, out)
    if query:
        query_once(out / "bundle", query)
        typer.echo(f"collection to served, queried index: {time.perf_counter() - steps.t0:.0f} s")
    if serve:
        serve_bundle(out / "bundle", port)
    return results


def print_summary(results: dict, out: Path) -> None:
    from retrieval_kd.evaluate import format_table

    typer.echo("\n" + format_table(results["rows"], results["columns"]) + "\n")
    typer.echo(f"whole run {results['timings']['total']:.0f} s; report {out / 'report.md'}; "
               f"serve with: rkd serve {out / 'bundle'}")


def query_once(bundle: Path, query: str, k: int = 5) -> None:
    """Serve the bundle on a free loopback port, send one search over HTTP, print the hits, stop."""
    from retrieval_kd.serving.process import serve_once

    res = serve_once(bundle, query, k=k)
    typer.echo(f"      POST {res['url']}  {json.dumps({'query': query, 'k': k})}")
    for hit in res["hits"]:
        text = " ".join(str(hit.get("text") or "").split())[:90]
        typer.echo(f"      {hit['rank']}. {hit['id']}  {hit['score']:.4f}  {text}")


def serve_bundle(bundle: Path, port: int) -> None:
    """Serve the bundle in the foreground (Ctrl-C stops it), printing the search page's URL."""
    import os
    import sys

    typer.echo(f"search page: http://127.0.0.1:{port}/  (API: /v1/indexes, docs: /docs; Ctrl-C stops)")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "server", str(bundle), "--port", str(port)])
